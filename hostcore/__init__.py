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
from hostcore.sinks.base import EventsLost, Sink, SinkClosed, SinkOptionError, SinkSpec
from hostcore.sinks.output import ReopenWatch, open_append
from hostcore.sources import SourceError, SourceSpec, TailQuery

hookimpl = pluggy.HookimplMarker("hostcore")

__all__ = [
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
    "Owner",
    "OwnerSource",
    "Packet",
    "PacketKind",
    "PreloadingHandler",
    "ReadCounters",
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
    "hookimpl",
    "open_append",
]
