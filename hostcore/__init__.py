"""hostcore: a host event engine built on an eBPF packet probe and pluggy plugins.

Plugin authors need only what this module exports: the ``hookimpl`` marker and
the value types their hooks receive and return.
"""

from __future__ import annotations

import pluggy

from hostcore.events import (
    DnsNames,
    Emit,
    EventContext,
    EventHandler,
    EventSpec,
    ExpiringHandler,
    Field,
    PreloadingHandler,
)
from hostcore.monitors import Monitor, MonitorSpec, ReadCounters
from hostcore.packet import Direction, OpenSocket, Owner, OwnerSource, Packet, PacketKind
from hostcore.signatures.spec import Report, Signature, SignatureContext, SignatureSpec
from hostcore.sinks.base import (
    EventsLost,
    Sink,
    SinkClosed,
    SinkOptionError,
    SinkSpec,
    name_and_host,
)
from hostcore.sinks.output import ReopenWatch, open_append
from hostcore.sinks.secret import SECRET_FORMS, read_secret
from hostcore.sinks.tls import OPTIONS as TLS_OPTIONS
from hostcore.sinks.tls import Refused, Tls, tls_from
from hostcore.sources import Output, SourceError, SourceSpec, TailQuery

hookimpl = pluggy.HookimplMarker("hostcore")

__all__ = [
    "SECRET_FORMS",
    "TLS_OPTIONS",
    "Direction",
    "DnsNames",
    "Emit",
    "EventContext",
    "EventHandler",
    "EventSpec",
    "EventsLost",
    "ExpiringHandler",
    "Field",
    "Monitor",
    "MonitorSpec",
    "OpenSocket",
    "Output",
    "Owner",
    "OwnerSource",
    "Packet",
    "PacketKind",
    "PreloadingHandler",
    "ReadCounters",
    "Refused",
    "ReopenWatch",
    "Report",
    "Signature",
    "SignatureContext",
    "SignatureSpec",
    "Sink",
    "SinkClosed",
    "SinkOptionError",
    "SinkSpec",
    "SourceError",
    "SourceSpec",
    "TailQuery",
    "Tls",
    "hookimpl",
    "name_and_host",
    "open_append",
    "read_secret",
    "tls_from",
]
