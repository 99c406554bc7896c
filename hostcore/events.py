"""What an event plugin declares, and what the core hands its handler."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hostcore.packet import OpenSocket, Packet, PacketKind

LOST_EVENTS_NAME = "lost_events"  # the core's own event: what was lost, reported in the stream
LOST_EVENTS_ID = 1


class Emit(Protocol):
    """What a handler calls to hand one event to the core."""

    def __call__(
        self, timestamp_ns: int, data: Mapping[str, Any], source: Packet | None = None
    ) -> None:
        """``data`` holds the event's fields; ``source`` is the packet whose local socket
        the event is about: the core fills the event's context (process, user, cgroup,
        container) from it. Without one, the context is all null."""


@dataclass(frozen=True)
class Field:
    """One data field of an event: its name and its type in the event contract."""

    name: str
    type: str  # "string", "uint16", "[]string", ...


class Declared(Protocol):
    """What events and signatures both declare, and what selection and data filters read."""

    @property
    def name(self) -> str: ...
    @property
    def id(self) -> int: ...
    @property
    def fields(self) -> tuple[Field, ...]: ...
    @property
    def sets(self) -> tuple[str, ...]: ...


class DnsNames(Protocol):
    """The core's DNS store, as event handlers see it."""

    def names(self, address: str, cgroup_id: int, timestamp_ns: int) -> list[str]:
        """Names that DNS answers gave ``address`` and that are valid at ``timestamp_ns``.

        Each chain is the question name, then every CNAME target down to the
        address; chains from answers delivered into cgroup ``cgroup_id`` come
        first, then the host's others, most recent answer first; no name twice.
        """


class NoDnsNames:
    """The store of a run in which no enabled event uses DNS names: it knows none."""

    def names(self, address: str, cgroup_id: int, timestamp_ns: int) -> list[str]:
        return []


@dataclass
class EventContext:
    """What the core gives an event handler when a run starts."""

    count: Callable[[str, int], None]
    """``count(name, n)``: add to one of the run's counters (reported with the totals)."""
    dns: DnsNames = field(default_factory=NoDnsNames)
    """The DNS store; it only holds names in runs where an enabled event sets ``uses_dns``."""
    options: Mapping[str, str] = field(default_factory=dict)
    """The user's values for the options the event declares (``[events.NAME]`` in the
    config file), as text; options the user did not set are absent."""


class EventHandler(Protocol):
    """Turns batches of packets into events; one instance per run."""

    def handle(self, packets: Sequence[Packet], emit: Emit) -> None:
        """Handle packets of the kinds the event declared, in ring-buffer order."""


class ExpiringHandler(EventHandler, Protocol):
    """A handler whose events may be due when no packet comes (a timeout)."""

    def expire(self, now_ns: int, emit: Emit) -> None:
        """Emit what is due at ``now_ns`` (ns since the epoch, the clock of packet
        timestamps). Called about once a second, after the packets read by then."""


class PreloadingHandler(EventHandler, Protocol):
    """A handler that starts from the connections already open when the run starts."""

    def preload(self, sockets: Sequence[OpenSocket]) -> None:
        """Take the host's established TCP sockets, read once the probe is attached
        and before any packet is handled (a socket may also show up in packets)."""


@dataclass(frozen=True)
class EventSpec:
    """An event a plugin provides.

    ``handler`` is called once per run with an EventContext, and only when the
    event is enabled; the object it returns receives the packets ``needs`` selects.
    ``uses_dns`` makes the run capture DNS answers into the store that
    ``EventContext.dns`` reads; every answer is stored before any packet that
    came after it reaches a handler. ``options`` names what the user may set in
    ``[events.NAME]`` (option -> help); the core rejects any other option.
    A handler with ``expire`` or ``preload`` methods (:class:`ExpiringHandler`,
    :class:`PreloadingHandler`) gets those calls too.
    """

    name: str
    id: int
    fields: tuple[Field, ...]
    sets: tuple[str, ...]
    depends_on: str
    needs: PacketKind
    handler: Callable[[EventContext], EventHandler]
    description: str = ""
    uses_dns: bool = False
    options: Mapping[str, str] = field(default_factory=dict)
    plugin: str = field(default="", compare=False)  # filled in by the core
