"""The sink interface that every sink plugin implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class SinkOptionError(ValueError):
    """A sink was given options it cannot use; the message says which and why."""


class SinkClosed(Exception):
    """Raised by a sink whose destination is gone for good (e.g. a closed pipe).

    The core stops writing to it; when no sink is left, the run ends.
    """


def name_and_host(event: Mapping[str, Any]) -> tuple[str, str]:
    """An event's name and host, in hostcore's map or rendered as Tracee's (``--format``)."""
    if "eventName" in event:
        return event["eventName"], event["hostName"]
    return event["name"], event["host"]


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
    """Receives every event of a run, already packed once as msgpack."""

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        """Take one event: ``packed`` is its msgpack map, ``event`` the same map decoded."""

    def flush(self) -> None:
        """Push buffered events out; called when the sink's queue has emptied, and before close."""

    def close(self) -> None:
        """Release resources; no write follows."""


@dataclass(frozen=True)
class SinkSpec:
    """A sink a plugin provides: its name, its options (name -> help) and its opener."""

    name: str
    open: Callable[[Mapping[str, str]], Sink]
    options: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    plugin: str = field(default="", compare=False)  # filled in by the core
