"""The sink interface that every sink plugin implements, and the conventions it follows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol


class SinkClosed(Exception):
    """Raised by a sink whose destination is gone for good (e.g. a closed pipe).

    The core stops writing to it; what it still held is counted as undelivered;
    when no sink is left, the run ends.
    """


class EventsLost(Exception):
    """Raised by a sink's write or flush: ``count`` events it took are lost for good.

    For a sink that holds events back and writes them in batches, so that the core
    counts each lost event (``sink_errors.<sink>``) rather than one failed call. The
    message (the cause) is logged.
    """

    def __init__(self, count: int, cause: str) -> None:
        super().__init__(f"{count} event(s) lost: {cause}")
        self.count = count


class Sink(Protocol):
    """Receives every event of a run, already packed once as msgpack.

    Threads: each sink runs in a thread of its own behind a bounded queue
    (``queue_size``), so a slow or dead sink never stalls capture or the other
    sinks. ``write``, ``flush`` and ``close`` are called from that thread only, one
    at a time, events in the order they were published. A sink may block in
    ``write`` while its destination is down, retrying as it sees fit: the queue is
    its buffer, and what overflows it is counted (``sink_drops.<sink>``).

    Failures: a ``write`` that raises loses that event (``sink_errors.<sink>``), a
    ``flush`` that raises is counted in ``sink_flush_failures.<sink>``; both are
    logged at most once a minute and the run goes on. Raise :class:`EventsLost` for
    a batch of events lost at once, :class:`SinkClosed` when the destination is gone
    for good. A sink that holds events back (a batch) says how many in ``held``
    (:class:`BatchingSink`), so that what it holds at the end is counted too.
    """

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        """Take one event: ``packed`` is its msgpack map, ``event`` the same map decoded
        (read-only; hostcore's map or, with ``--format tracee``, Tracee's: read names
        and data with :func:`event_parts`). A :class:`JsonLinesSink` gets the event's
        JSON line instead."""

    def flush(self) -> None:
        """Push held events out; called whenever the sink's queue has emptied after
        writes, and always before ``close``."""

    def close(self) -> None:
        """Release resources; called once, after a final ``flush``; no write follows."""


class JsonLinesSink(Protocol):
    """A sink that takes each event as a JSON line, as the ``stdout`` sink does: the core
    makes it once for every such sink, from pieces it keeps (far cheaper than
    ``json.dumps`` of each map). Everything else is as :class:`Sink` says."""

    encoding: str
    """``"json"``, as a class attribute: what tells this sink from a msgpack one."""

    def write(self, line: str, event: Mapping[str, Any]) -> None:
        """Take one event: ``line`` is its map as compact JSON with a newline at the end."""

    def flush(self) -> None: ...

    def close(self) -> None: ...


AnySink = Sink | JsonLinesSink
ENCODINGS = ("msgpack", "json")  # what a sink's ``encoding`` may say; msgpack if it says none


def encoding_of(name: str, sink: AnySink) -> str:
    """What sink ``name`` takes as the first argument of ``write``."""
    encoding = getattr(sink, "encoding", ENCODINGS[0])
    if encoding not in ENCODINGS:
        raise ValueError(
            f"sink {name!r}: its encoding must be one of {', '.join(ENCODINGS)} "
            f"(or unset: msgpack), not {encoding!r}"
        )
    return str(encoding)


class Unencodable(Exception):
    """Stands for an event's encoding that could not be made (a value msgpack or JSON
    cannot hold): a sink that takes that encoding fails to write the event, counted as
    its sink error, and the run's other sinks still get it."""


Rendered = tuple[bytes | Unencodable, str | Unencodable, Mapping[str, Any], bool]
"""One event as every sink gets it: its msgpack bytes and its JSON line (each empty when
no sink of the run takes it), the map they encode, and whether it is a ``lost_events``
marker. A plain tuple, read by these indices: one is made per event."""
PACKED: Final = 0
LINE: Final = 1
EVENT: Final = 2
MARKER: Final = 3


class BatchingSink(Sink, Protocol):
    """A sink that takes events into a batch of its own before delivering them."""

    held: int
    """Events taken and not yet delivered: if the sink is stuck at the end of a run (or
    still holds some after its final flush), the core counts them as undelivered."""


class EventParts(NamedTuple):
    """What every sink may need of an event, in either output format."""

    name: str
    host: str
    timestamp_ns: int
    data: Mapping[str, Any]


def event_parts(event: Mapping[str, Any]) -> EventParts:
    """An event's name, host, timestamp and data fields, from hostcore's map or from
    Tracee's (``--format tracee``: ``eventName``, ``hostName``, ``args``)."""
    if "eventName" in event:
        data = {arg["name"]: arg["value"] for arg in event["args"]}
        return EventParts(event["eventName"], event["hostName"], event["timestamp"], data)
    return EventParts(event["name"], event["host"], event["timestamp"], event["data"])


@dataclass(frozen=True)
class SinkSpec:
    """A sink a plugin provides: its name, its options (name -> help) and its opener.

    ``open(options)`` gets the user's options as text (only declared names; the core
    takes ``queue_size`` itself) and raises :class:`hostcore.OptionError` for a bad value.
    ``check(options)``, if given, raises the same errors without opening anything: the
    core calls it before the run needs privileges or touches the kernel, so that a bad
    value is told first, with nothing created, bound or connected.
    """

    name: str
    open: Callable[[Mapping[str, str]], AnySink]
    options: Mapping[str, str] = field(default_factory=dict)
    check: Callable[[Mapping[str, str]], object] | None = None
    description: str = ""
    plugin: str = field(default="", compare=False)  # filled in by the core
