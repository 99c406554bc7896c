"""The ``nats`` sink: each event's msgpack to ``hostcore.<host>.<event>`` on a JetStream stream.

Publishing is asynchronous with a bounded window: events go out in batches of up to
``BATCH`` with no wait in between, while the acks of earlier ones are read, so long as
at most ``MAX_OUTSTANDING`` are unacked; ``flush`` (when the sink's queue has emptied)
waits until every one is acked. Each message carries a ``Nats-Msg-Id`` unique to the
run and the event: one that is not acked in time, or was in flight when the connection
broke, is published again with it, and the stream's de-duplication stores it once. A
subject the server does not let this user publish to is not retried: its events are
counted lost (``sink_errors.nats``) and the refusal is logged once, clearly.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from hostcore import EventsLost, event_parts
from hostcore_nats import protocol
from hostcore_nats.client import Connection, PermissionDenied, connected, server_error
from hostcore_nats.protocol import Control, Frame, Msg
from hostcore_nats.server import Server
from hostcore_nats.subjects import subject

MAX_OUTSTANDING = 16384  # unacked messages at most: about 6 MB of events in hand
# Half the window: one batch is in flight while the next is made. Each write of a batch
# hands the GIL to the thread making events, which keeps it until the interpreter's
# switch interval (5 ms) takes it back, so the sink writes seldom, to keep up.
BATCH = MAX_OUTSTANDING // 2
ACK_TIMEOUT_S = 5.0
UNAVAILABLE_RETRY_S = 0.5  # JetStream answered that it cannot store now (restarting)
READ_WAIT_S = 0.05

log = structlog.get_logger()


Message = tuple[bytes, bytes]  # subject, payload: an event in hand until the stream acks it


class NatsSink:
    def __init__(self, server: Server, connection: Connection) -> None:
        self._server = server
        self._connection: Connection | None = connection
        self._max_payload = connection.max_payload
        self._reply = f"{connection.inbox}.".encode()
        # Message ids: 96 random bits for the run, then the event's number in it.
        self._id = f"NATS/1.0\r\nNats-Msg-Id: {secrets.token_urlsafe(12)}-".encode()
        self._sequence = 0
        self._pending: dict[int, Message] = {}  # by sequence: not acked yet
        self._unsent: list[int] = []  # of those, the ones to publish (again)
        # Of those, the ones published: when to publish each again if no ack has come, in
        # the order they were published, so the first is always the next to time out.
        self._due: dict[int, float] = {}
        self._unavailable: dict[int, float] = {}  # JetStream could not store them: when to retry
        self._subjects: dict[tuple[str, str], bytes] = {}
        self._refused: dict[bytes, str] = {}  # subjects the server refused, and why
        self._lost = 0
        self._lost_cause = ""
        self._timed_out = False  # a retry after a timeout was logged, this outage
        self.published = 0
        self.duplicates = 0
        self.retried = 0
        self.disconnections = 0

    @property
    def held(self) -> int:
        """Events taken but not yet acked: the core counts them if the run ends first."""
        return len(self._pending)

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        parts = event_parts(event)
        key = (parts.host, parts.name)
        to = self._subjects.get(key)
        if to is None:
            to = self._subjects[key] = subject(*key).encode()
        if to in self._refused:
            self._lose(1, self._refused[to])
            return
        if len(packed) + 64 > self._max_payload:
            self._lose(1, f"an event of {len(packed)} bytes is over the server's max_payload")
            return
        self._sequence += 1
        self._pending[self._sequence] = (to, packed)
        self._unsent.append(self._sequence)
        if len(self._unsent) >= BATCH:
            self._settle(lambda: not self._unsent)

    def flush(self) -> None:
        """Publish what is held and wait until the stream has acked all of it."""
        self._settle(lambda: not self._pending)
        if self._lost:
            lost, self._lost = self._lost, 0
            raise EventsLost(lost, self._lost_cause)

    def _settle(self, done: Callable[[], bool]) -> None:
        """Publish, read acks and publish again what needs it, until ``done()``."""
        while True:
            if self._connection is None:
                self._reconnect()
            room = MAX_OUTSTANDING - (len(self._pending) - len(self._unsent))
            if self._unsent and room > 0:
                self._transmit(room)
            if done():
                return
            try:
                frames = self._connection.frames(READ_WAIT_S) if self._connection else []
            except OSError as error:
                self._disconnected(str(error))
                continue
            self._take(frames)
            self._expire()

    def _transmit(self, room: int) -> None:
        """Publish the first ``room`` of the unsent, in one write."""
        assert self._connection is not None
        reply, head, pending = self._reply, self._id, self._pending
        batch, self._unsent = self._unsent[:room], self._unsent[room:]
        parts = []
        for sequence in batch:
            number = b"%d" % sequence
            to, payload = pending[sequence]
            parts.append(
                protocol.hpublish(to, reply + number, head + number + b"\r\n\r\n", payload)
            )
        try:
            self._connection.send(b"".join(parts))
        except OSError as error:
            self._unsent = batch + self._unsent
            self._disconnected(str(error))
            return
        self._due.update(dict.fromkeys(batch, time.monotonic() + ACK_TIMEOUT_S))

    def _take(self, frames: list[Frame]) -> None:
        """Acks (most frames: one loop with its lookups at hand), and the server's errors."""
        pending, due = self._pending, self._due
        published = duplicates = 0
        for frame in frames:
            if not isinstance(frame, tuple):
                self._take_other(frame)
                continue
            sequence, payload = frame
            message = pending.pop(sequence, None)
            if message is None:
                continue  # acked already: a second ack of a message published again
            due.pop(sequence, None)
            if b'"error"' in payload:
                self._not_stored(sequence, message, payload)
                continue
            published += 1
            duplicates += b'"duplicate":true' in payload
        if published:
            self.published += published
            self.duplicates += duplicates
            self._timed_out = False

    def _take_other(self, frame: Msg | Control) -> None:
        """A ``-ERR``, or an answer with a status header: no JetStream to store (yet). (The
        acks, plain messages to the inbox, come as replies.)"""
        if isinstance(frame, Control):
            if frame.op == "-ERR":
                self._server_error(frame.text)
            return
        if not (frame.head and frame.subject.startswith(self._reply)):
            return
        try:
            sequence = int(frame.subject[len(self._reply) :])
        except ValueError:
            return  # a late reply to a request
        message = self._pending.pop(sequence, None)
        if message is not None:
            self._due.pop(sequence, None)
            self._not_stored(sequence, message, frame.payload)

    def _not_stored(self, sequence: int, message: Message, payload: bytes) -> None:
        """An ack that says JetStream did not store the message: later, or never."""
        if b'"error"' in payload and b'"code":503' not in payload:
            text = payload[:200].decode(errors="replace")
            self._lose(1, f"JetStream did not store an event: {text}")
            return
        # No responders, or a 503: it cannot store now (restarting), so again soon.
        self._pending[sequence] = message
        self._unavailable[sequence] = time.monotonic() + UNAVAILABLE_RETRY_S

    def _expire(self) -> None:
        """Publish again what was not acked in time, or what JetStream could not store."""
        now = time.monotonic()
        again = [sequence for sequence, due in self._unavailable.items() if due <= now]
        for sequence in again:
            del self._unavailable[sequence]
        timed_out = []
        for sequence, due in self._due.items():
            if due > now:
                break
            timed_out.append(sequence)
        for sequence in timed_out:
            del self._due[sequence]
        if not (again or timed_out):
            return
        self._unsent += again + timed_out
        self.retried += len(again) + len(timed_out)
        if not self._timed_out:
            self._timed_out = True
            log.warning("nats publish not acked, retrying", sink="nats", unacked=len(self._pending))

    def _server_error(self, text: str) -> None:
        error = server_error(text)
        if not isinstance(error, PermissionDenied):
            self._disconnected(str(error))  # the server closes the connection after these
            return
        if not error.publishing:  # acks could no longer come: a new connection will say why
            self._disconnected(str(error))
            return
        reason = (
            f"{error}: is --host-name this host's own, as the server's permissions name it? "
            "(its events are not retried)"
        )
        to = error.subject.encode()
        if to not in self._refused:  # the server says so for each message: logged once
            self._refused[to] = reason
            log.error("nats publish refused", sink="nats", subject=error.subject, error=reason)
        refused = [sequence for sequence, (m, _) in self._pending.items() if m == to]
        for sequence in refused:
            del self._pending[sequence]
            self._due.pop(sequence, None)
            self._unavailable.pop(sequence, None)
        self._unsent = [sequence for sequence in self._unsent if sequence in self._pending]
        self._lose(len(refused), reason)

    def _lose(self, count: int, cause: str) -> None:
        self._lost += count
        self._lost_cause = cause

    def _disconnected(self, why: str) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            self.disconnections += 1
            log.warning("nats disconnected, reconnecting", sink="nats", error=why)

    def _reconnect(self) -> None:
        """A new connection; everything unacked is published again on it."""
        self._connection = connected(self._server, "hostcore")
        assert self._connection is not None  # the sink retries until the run gives up on it
        self._reply = f"{self._connection.inbox}.".encode()
        self.retried += len(self._pending) - len(self._unsent)
        self._unsent = list(self._pending)
        self._due.clear()
        self._unavailable.clear()

    def close(self) -> None:
        """After the core's final flush: what it could not publish is counted as held."""
        log.info(
            "nats sink totals",
            sink="nats",
            published=self.published,
            duplicates=self.duplicates,
            retried=self.retried,
        )
        if self._connection is not None:
            self._connection.close()
