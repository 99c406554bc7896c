"""Event sources that ``hostcore tail URL`` reads: a plugin provides one per URL scheme."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hostcore.sinks.base import event_parts


@dataclass(frozen=True)
class TailQuery:
    """What ``hostcore tail`` asks a source for."""

    hosts: frozenset[str] = frozenset()  # empty: every host
    events: frozenset[str] = frozenset()  # empty: every event name
    start_seq: int | None = None  # the source's own position (a stream sequence), 1 = the start
    start_time_ns: int | None = None  # or the first event stored at or after this time
    follow: bool = True  # False: stop after what is stored now

    def wants(self, event: Mapping[str, Any]) -> bool:
        name, host, _, _ = event_parts(event)
        return (not self.hosts or host in self.hosts) and (not self.events or name in self.events)


Output = Callable[[Mapping[str, Any]], None]
"""Called with each event map, in stream order; raises ``SinkClosed`` if no one reads."""


@dataclass(frozen=True)
class SourceSpec:
    """A source of stored events: its URL scheme (``nats`` for ``nats://...``) and reader.

    ``tail(url, query, output)`` calls ``output`` for each event the query wants, from
    the query's start, and returns at the end if ``query.follow`` is false; otherwise it
    follows new events until interrupted (KeyboardInterrupt). Raise ``SourceError`` with
    a message for the user when the URL cannot be read.
    """

    name: str
    tail: Callable[[str, TailQuery, Output], None]
    description: str = ""
    plugin: str = field(default="", compare=False)  # filled in by the core


class SourceError(RuntimeError):
    """A source cannot be read; the message says why and what to do."""
