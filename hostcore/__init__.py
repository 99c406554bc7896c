"""hostcore: a host event engine built on an eBPF packet probe and pluggy plugins.

Plugin authors need only what this module exports: the ``hookimpl`` marker, the
value types their hooks receive and return, and the helpers every plugin of a
kind uses. The hooks themselves are documented in :mod:`hostcore.hookspecs`.
"""

from __future__ import annotations

import pluggy

from hostcore.bounded import BoundedCache, BoundedMap, BoundedSet
from hostcore.events import DnsNames, Emit, EventContext, EventSpec, Field
from hostcore.monitors import IsLoss, Monitor, MonitorSpec, ReadCounters
from hostcore.options import (
    Address,
    OptionError,
    flag_option,
    number_option,
    parse_address,
    whole_number_option,
)
from hostcore.packet import (
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    Direction,
    OpenSocket,
    Owner,
    OwnerSource,
    Packet,
    PacketKind,
    TcpTotals,
)
from hostcore.signatures.spec import Report, Signature, SignatureContext, SignatureSpec
from hostcore.sinks.base import (
    BatchingSink,
    EventParts,
    EventsLost,
    JsonLinesSink,
    Sink,
    SinkClosed,
    SinkSpec,
    event_parts,
)
from hostcore.sinks.output import ReopenWatch, open_append
from hostcore.sinks.secret import SECRET_FORMS, read_secret
from hostcore.sinks.tls import OPTIONS as TLS_OPTIONS
from hostcore.sinks.tls import Refused, Tls, tls_from
from hostcore.sources import Output, SourceError, SourceSpec, TailQuery

hookimpl = pluggy.HookimplMarker("hostcore")

__all__ = [
    "SECRET_FORMS",
    "TCP_ACK",
    "TCP_FIN",
    "TCP_RST",
    "TCP_SYN",
    "TLS_OPTIONS",
    "Address",
    "BatchingSink",
    "BoundedCache",
    "BoundedMap",
    "BoundedSet",
    "Direction",
    "DnsNames",
    "Emit",
    "EventContext",
    "EventParts",
    "EventSpec",
    "EventsLost",
    "Field",
    "IsLoss",
    "JsonLinesSink",
    "Monitor",
    "MonitorSpec",
    "OpenSocket",
    "OptionError",
    "Output",
    "Owner",
    "OwnerSource",
    "Packet",
    "PacketKind",
    "ReadCounters",
    "Refused",
    "ReopenWatch",
    "Report",
    "Signature",
    "SignatureContext",
    "SignatureSpec",
    "Sink",
    "SinkClosed",
    "SinkSpec",
    "SourceError",
    "SourceSpec",
    "TailQuery",
    "TcpTotals",
    "Tls",
    "event_parts",
    "flag_option",
    "hookimpl",
    "number_option",
    "open_append",
    "parse_address",
    "read_secret",
    "tls_from",
    "whole_number_option",
]
