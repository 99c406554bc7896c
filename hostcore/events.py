"""What an event plugin declares, and what the core hands its handler."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hostcore.packet import Packet, PacketKind

SCHEMA_VERSION = 1  # the event map's ``v``: bumped on any incompatible change
LOST_EVENTS_NAME = "lost_events"  # the core's own event: what was lost, reported in the stream
LOST_EVENTS_ID = 1


def event_map(
    name: str,
    event_id: int,
    timestamp_ns: int,
    host: str,
    context: Mapping[str, Any],
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """The event map, the contract every sink reads (README: The event map)."""
    return {
        "v": SCHEMA_VERSION,
        "name": name,
        "id": event_id,
        "timestamp": timestamp_ns,
        "host": host,
        "context": context,
        "data": data,
    }


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
        The list is shared with other lookups of the same address: read-only.
        """


class NoDnsNames:
    """The store of a run in which no enabled event uses DNS names: it knows none."""

    def names(self, address: str, cgroup_id: int, timestamp_ns: int) -> list[str]:
        return []


@dataclass
class EventContext:
    """What the core gives an event's handler when a run starts."""

    count: Callable[[str, int], None]
    """``count(name, n)``: add to one of the run's counters (reported with the totals);
    the names the event lists in ``EventSpec.loss_counters`` are reported as losses."""
    emit: Emit
    """Hands one of the event's events to the core (see :class:`Emit`)."""
    dns: DnsNames = field(default_factory=NoDnsNames)
    """The DNS store; it only holds names in runs where an enabled event sets ``uses_dns``."""
    options: Mapping[str, str] = field(default_factory=dict)
    """The user's values for the options the event declares (``[events.NAME]`` in the
    config file), as text; options the user did not set are absent."""


@dataclass(frozen=True)
class EventSpec:
    """An event a plugin provides.

    ``handler`` is called once per run with an :class:`EventContext`, and only when
    the event is enabled. The object it returns implements the hooks of
    :class:`hostcore.hookspecs.EventHandlerHooks` it needs, with ``@hostcore.hookimpl``:
    ``hostcore_packets`` receives the packets ``needs`` selects (an event that needs
    packets must implement it), ``hostcore_expire`` timeouts, ``hostcore_preload``
    the connections open at start-up. ``uses_dns`` makes the run capture DNS
    answers into the store that ``EventContext.dns`` reads; every answer is stored
    before any packet that came after it reaches a handler. ``options`` names what
    the user may set in ``[events.NAME]`` (option -> help); the core rejects any
    other option. ``loss_counters`` names the counters (``EventContext.count``)
    that mean events were lost or degraded: they are reported in ``lost_events``.
    ``tracee_id`` is Tracee's id for an event Tracee has too (``--format tracee``);
    other events are given ids outside Tracee's.
    """

    name: str
    id: int
    fields: tuple[Field, ...]
    sets: tuple[str, ...]
    depends_on: str
    needs: PacketKind
    handler: Callable[[EventContext], object]
    description: str = ""
    uses_dns: bool = False
    options: Mapping[str, str] = field(default_factory=dict)
    loss_counters: tuple[str, ...] = ()
    tracee_id: int | None = None
    plugin: str = field(default="", compare=False)  # filled in by the core
