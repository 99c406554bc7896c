"""What an event plugin declares, and what the core hands its handler."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hostcore.packet import Packet, PacketKind

LOST_EVENTS_NAME = "lost_events"  # the core's own event: what was lost, reported in the stream
LOST_EVENTS_ID = 1

Emit = Callable[[int, Mapping[str, Any]], None]
"""``emit(timestamp_ns, data)``: hand one event's data fields to the core."""


@dataclass(frozen=True)
class Field:
    """One data field of an event: its name and its type in the event contract."""

    name: str
    type: str  # "string", "uint16", "[]string", ...


@dataclass
class EventContext:
    """What the core gives an event handler when a run starts."""

    count: Callable[[str, int], None]
    """``count(name, n)``: add to one of the run's counters (reported with the totals)."""


class EventHandler(Protocol):
    """Turns batches of packets into events; one instance per run."""

    def handle(self, packets: Sequence[Packet], emit: Emit) -> None:
        """Handle packets of the kinds the event declared, in ring-buffer order."""


@dataclass(frozen=True)
class EventSpec:
    """An event a plugin provides.

    ``handler`` is called once per run with an EventContext, and only when the
    event is enabled; the object it returns receives the packets ``needs`` selects.
    """

    name: str
    id: int
    fields: tuple[Field, ...]
    sets: tuple[str, ...]
    depends_on: str
    needs: PacketKind
    handler: Callable[[EventContext], EventHandler]
    description: str = ""
    plugin: str = field(default="", compare=False)  # filled in by the core
