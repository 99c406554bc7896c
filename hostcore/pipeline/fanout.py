"""Fan-out: each event, rendered and packed once, to every sink's queue; losses reported
to every sink in a ``lost_events`` event."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import structlog

from hostcore.events import LOST_EVENTS_ID, LOST_EVENTS_NAME, event_map
from hostcore.log import FailureLog
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.context import UNKNOWN
from hostcore.pipeline.render import Renderer
from hostcore.sinks.base import AnySink, Rendered, SinkClosed, encoding_of
from hostcore.sinks.queue import DEFAULT_QUEUE_SIZE, QueuedSink

DEFAULT_DRAIN_TIMEOUT_S = 5.0

log = structlog.get_logger()


class Fanout:
    """The run's sinks, each behind its own bounded queue and thread (sinks/queue.py).

    ``start`` opens the queues once everything upstream has started, so that a handler
    or signature that fails to start leaves no sink thread behind. ``close`` waits at
    most ``drain_timeout_s`` for all of them to write what they hold.
    """

    def __init__(
        self,
        render: Renderer,
        host: str,
        accounting: Accounting,
        failures: FailureLog,
        drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
    ) -> None:
        self._render = render
        self._host = host
        self._accounting = accounting
        self._failures = failures
        self._drain_timeout_s = drain_timeout_s
        self._sinks: dict[str, QueuedSink] = {}
        self._every_sink: list[QueuedSink] = []  # closed ones too: their counters stay
        self._stopped: list[QueuedSink] = []  # sinks that closed themselves, still closing
        self._batch: list[Rendered] = []  # sent, not yet queued for the sinks

    def start(self, sinks: Mapping[str, AnySink], sizes: Mapping[str, int], waits: bool) -> None:
        """Put each sink behind its queue (``sizes`` by sink name); with ``waits``, a full
        queue holds up ``send`` instead of dropping (for a source that can wait)."""
        encodings = {name: encoding_of(name, sink) for name, sink in sinks.items()}  # first
        self._render.use(encodings.values())
        for name, sink in sinks.items():
            size = sizes.get(name, DEFAULT_QUEUE_SIZE)
            self._sinks[name] = QueuedSink(
                name, sink, encodings[name], size, self._marker, self._failures, waits
            )
        self._every_sink = list(self._sinks.values())

    def send(self, event: Mapping[str, Any]) -> None:
        """Render ``event`` (hostcore's map) for the sinks; they get it at ``flush``."""
        self._batch.append(self._render(event))

    def flush(self) -> None:
        """Queue what was sent since the last call for every sink, and wake their threads
        (once a batch)."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        for sink_name, queued in list(self._sinks.items()):
            try:
                queued.put(batch)
            except SinkClosed as gone:
                self._drop(sink_name, gone)

    def _marker(self, data: Mapping[str, Any]) -> Rendered:
        lost = event_map(
            LOST_EVENTS_NAME, LOST_EVENTS_ID, data["interval_end"], self._host, UNKNOWN, data
        )
        packed, line, event, _ = self._render(lost)
        return packed, line, event, True

    def report_losses(self, now_ns: int) -> None:
        """Tell every sink, through a ``lost_events`` event, what was lost since the last one.

        A sink whose queue is full gets it, merged with any later one, once it has room.
        """
        self.flush()  # the batch's events, before the marker that covers them
        for sink_name, queued in list(self._sinks.items()):
            if queued.closed_reason:
                self._drop(sink_name, SinkClosed(queued.closed_reason))
        self._take_sink_counters()
        lost = self._accounting.unreported_losses()
        if not lost:
            return
        start_ns = self._accounting.reported_at_ns
        log.warning(
            "lost_events",
            lost=lost,
            total=sum(lost.values()),
            interval_start=start_ns,
            interval_end=now_ns,
        )
        for queued in self._sinks.values():
            queued.tell(lost, start_ns, now_ns)
        self._accounting.mark_reported(now_ns)

    def _take_sink_counters(self) -> None:
        # The sinks' threads count in their own ints; the run's counters take their values.
        for queued in self._every_sink:
            for name, value in queued.counters().items():
                self._accounting.set(name, value)

    @property
    def has_sinks(self) -> bool:
        """False once every sink has closed itself: nothing would receive events."""
        return any(not queued.closed_reason for queued in self._sinks.values())

    def _drop(self, name: str, closed: SinkClosed) -> None:
        queued = self._sinks.pop(name)
        log.warning("sink closed", sink=name, reason=str(closed), sinks_left=list(self._sinks))
        queued.stop()  # its thread closes it; waited for in close(), never on the dispatch path
        self._stopped.append(queued)

    def drain(self) -> float:
        """Wake the sinks and wait, within the drain timeout, until each has written and
        flushed what it was given; returns the deadline (``time.monotonic()``)."""
        deadline = time.monotonic() + self._drain_timeout_s
        self.flush()
        for queued in self._sinks.values():
            queued.wait_idle(deadline)
        return deadline

    def close(self) -> None:
        """Let every sink write what it holds, within the drain timeout, and close it.

        Losses counted while the sinks wrote are reported to them before they close;
        what a sink still held at the deadline is counted as ``sink_undelivered.<sink>``.
        """
        deadline = self.drain()
        self.report_losses(time.time_ns())
        for queued in self._sinks.values():
            queued.stop()
        for queued in [*self._sinks.values(), *self._stopped]:
            queued.join(deadline)
        self._take_sink_counters()
