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
from hostcore.sources import Output, SourceError, SourceSpec, TailQuery

hookimpl = pluggy.HookimplMarker("hostcore")

__all__ = [
    "TCP_ACK",
    "TCP_FIN",
    "TCP_RST",
    "TCP_SYN",
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
    "event_parts",
    "hookimpl",
    "number_option",
    "open_append",
    "parse_address",
    "whole_number_option",
]
