"""Each sink behind its own bounded queue and thread, so a slow or dead sink never stalls capture.

The dispatch thread hands over each batch's events at once (a length test and an
extend of the deque) and wakes the sink's thread. The sink's thread writes, then
flushes whenever its queue has emptied. What a full queue turns away is counted
(``sink_drops.<sink>``); a ``lost_events`` marker the queue cannot take waits, merged
with any later one, until the sink can take events again, and is never itself dropped.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from hostcore.log import FailureLog
from hostcore.sinks.base import (
    EVENT,
    LINE,
    MARKER,
    PACKED,
    AnySink,
    EventsLost,
    Rendered,
    SinkClosed,
    Unencodable,
)

DEFAULT_QUEUE_SIZE = 65536
CLOSE_GRACE_S = 0.2  # what a sink that has nothing left to write gets to close, past the deadline
IDLE_POLL_S = 0.01

MarkerBuilder = Callable[[Mapping[str, Any]], Rendered]
"""Builds a ``lost_events`` event from its data."""

log = structlog.get_logger()


class QueuedSink:
    """A sink, its bounded queue and the thread that feeds it."""

    def __init__(
        self,
        name: str,
        sink: AnySink,
        encoding: str,
        size: int,
        build_marker: MarkerBuilder,
        failures: FailureLog,
        waits: bool = False,
    ) -> None:
        self.name = name
        self.size = size
        # A full queue makes ``put`` wait for room instead of dropping: for a source that
        # can wait (a capture file), unlike the kernel's ring.
        self._waits = waits
        self._sink = sink
        self.encoding = encoding
        self._takes_json = self.encoding == "json"
        self._build_marker = build_marker
        self._queue: deque[Rendered] = deque()
        self._wake = threading.Event()
        self._busy = False  # the sink's thread is in a pass: writing, then flushing
        self._stopping = False
        self._writing = False
        self._pending: Counter[str] = Counter()  # losses this sink has not been told of
        self._pending_interval: tuple[int, int] = (0, 0)
        self.closed_reason = ""  # set once the sink raised SinkClosed
        # Counted by the dispatch thread (drops) or by the sink's thread (the rest), and
        # ``undelivered`` by ``join`` too, once the thread has ended or is given up on;
        # the run reads them once a second.
        self.drops = 0
        self.errors = 0
        self.flush_failures = 0
        self.undelivered = 0
        self.markers_failed = 0
        self._failures = failures
        self._thread = threading.Thread(target=self._serve, name=f"sink-{name}", daemon=True)
        self._thread.start()

    def put(self, batch: Sequence[Rendered]) -> None:
        """Queue a batch of events and wake the sink's thread (dispatch thread); what
        the queue has no room for is counted dropped, or waited for (``waits``)."""
        if self.closed_reason:
            raise SinkClosed(self.closed_reason)
        if self._pending:
            self._deliver_pending()
        taken = 0
        while taken < len(batch):
            room = self.size - len(self._queue)
            if room <= 0 and self._waits and self._wait_for_room():
                continue
            if room <= 0:
                self.drops += len(batch) - taken
                break
            self._queue.extend(batch[taken : taken + room])
            taken += room
        if not self._wake.is_set():  # set already while the sink's thread has yet to start its pass
            self._wake.set()

    def _wait_for_room(self) -> bool:
        """Let the sink's thread write until the queue has room; False if it never will."""
        while len(self._queue) >= self.size and self._thread.is_alive():
            if self.closed_reason:
                raise SinkClosed(self.closed_reason)
            self._wake.set()
            time.sleep(IDLE_POLL_S / 10)
        return len(self._queue) < self.size

    def tell(self, lost: Mapping[str, int], start_ns: int, end_ns: int) -> None:
        """Queue a ``lost_events`` marker for these losses once the queue has room."""
        if self._pending:
            start_ns = self._pending_interval[0]
        self._pending.update(lost)
        self._pending_interval = (start_ns, end_ns)
        self._deliver_pending()

    def _deliver_pending(self) -> None:
        if len(self._queue) >= self.size:
            return
        start_ns, end_ns = self._pending_interval
        lost = dict(self._pending)
        data = {
            "lost": lost,
            "total": sum(lost.values()),
            "interval_start": start_ns,
            "interval_end": end_ns,
        }
        self._queue.append(self._build_marker(data))
        self._pending.clear()
        self._wake.set()  # markers come once a second at most, outside any batch

    def wait_idle(self, deadline: float) -> None:
        """Wait, at most until ``deadline`` (``time.monotonic()``), until the sink has
        written and flushed everything queued (polled: this is for the end of a run)."""
        # The thread is busy from before it clears a wake-up until its pass ends, so a
        # queued event always shows in one of the three.
        while self._busy or self._wake.is_set() or self._queue:
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return
            time.sleep(IDLE_POLL_S)

    def counters(self) -> dict[str, int]:
        """This sink's counters, named as the run's totals name them; zeros left out."""
        values = {
            "sink_drops": self.drops,
            "sink_errors": self.errors,
            "sink_flush_failures": self.flush_failures,
            "sink_undelivered": self.undelivered,
            "sink_lost_events_failed": self.markers_failed,
        }
        return {f"{key}.{self.name}": value for key, value in values.items() if value}

    def stop(self) -> None:
        """Ask the sink's thread to write what is queued, flush, close the sink and end."""
        self._stopping = True
        self._wake.set()

    def join(self, deadline: float) -> None:
        """Wait for the thread that ``stop`` ended, until ``deadline`` (``time.monotonic()``)
        or a short grace, whichever is later; what is still queued is counted undelivered."""
        self._thread.join(max(CLOSE_GRACE_S, deadline - time.monotonic()))
        # Left behind: a sink that closed itself, or one still blocked (its thread, a
        # daemon, ends with the process).
        if self._thread.is_alive():
            self.undelivered += self._in_hand()
        self.undelivered += len(self._queue)
        self._queue.clear()
        if self._thread.is_alive():
            log.warning("sink did not drain in time", sink=self.name, undelivered=self.undelivered)

    def _held(self) -> int:
        """Events a sink that batches (``BatchingSink``) took and has not delivered."""
        held = getattr(self._sink, "held", 0)
        return held if isinstance(held, int) else 0

    def _in_hand(self) -> int:
        """Events taken from the queue and not yet delivered, by a sink that is stuck:
        the one being written, or as many as a sink that batches holds."""
        return self._held() or int(self._writing)

    def _serve(self) -> None:
        while not self.closed_reason:
            self._wake.wait()
            self._busy = True
            self._wake.clear()
            wrote = self._write_queued()
            if wrote and not self.closed_reason:
                self._call("flush", self._sink.flush)
            self._busy = False
            if self._stopping and not self._queue:
                break
        if not self.closed_reason:
            self._call("flush", self._sink.flush)  # close always follows a final flush
            self.undelivered += self._held()  # what even that flush could not deliver
        self._call("close", self._sink.close)

    def _write_queued(self) -> int:
        queue = self._queue
        write: Callable[[Any, Mapping[str, Any]], None] = self._sink.write
        encoding = LINE if self._takes_json else PACKED
        wrote = 0
        self._writing = True
        try:
            while queue and not self.closed_reason:
                rendered = queue.popleft()
                wrote += 1
                try:
                    encoded = rendered[encoding]
                    if isinstance(encoded, Unencodable):
                        raise encoded
                    write(encoded, rendered[EVENT])  # not through _call: once per event
                except Exception as error:
                    if self._failed("write", error) or self.closed_reason:
                        continue
                    if rendered[MARKER]:
                        self.markers_failed += 1  # not a loss: it would ask for a marker
                    else:
                        self.errors += 1
        finally:
            self._writing = False
        return wrote

    def _call(self, what: str, action: Callable[[], None]) -> bool:
        """Run one sink call; False if it raised and what it lost is still to be counted."""
        try:
            action()
            return True
        except Exception as error:
            return self._failed(what, error)

    def _failed(self, what: str, error: Exception) -> bool:
        """Take a sink call's failure, from the ``except`` that caught it (logged with its
        traceback, at most once a minute per kind); True if what it lost is counted."""
        if isinstance(error, SinkClosed):
            self.closed_reason = str(error) or "the sink closed itself"
            # What the sink held (its batch, or the event being written), and the queue:
            # taken one by one, as a batch the dispatch thread is adding meanwhile is
            # left for ``join`` to count.
            self.undelivered += max(self._held(), what == "write")
            while self._queue:
                self._queue.popleft()
                self.undelivered += 1
            return False
        if isinstance(error, EventsLost):  # a batching sink says how many events it lost
            self.errors += error.count
        elif what == "flush":
            self.flush_failures += 1
        self._failures.exception(f"sink:{self.name}:{what}", f"sink {what} failed", sink=self.name)
        return isinstance(error, EventsLost)
