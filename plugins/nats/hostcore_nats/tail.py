"""``hostcore tail nats://HOST:PORT``: the stream from its start, or a given point, as events.

An ordered consumer of its own: an ephemeral push consumer without acks (nothing is
left on the server once it goes), filtered on the server by subject when the query
names one host or one event, and by the query otherwise. Its deliveries are checked
to follow one another; after a gap or a lost connection it is made again from the
message after the last one shown, so nothing is shown twice or skipped. The URL's
query takes the nats sink's options: ``?stream=NAME&creds=PATH&tls=true&ca_file=PATH``.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgpack

from hostcore import OptionError, Output, SourceError, TailQuery
from hostcore_nats import protocol
from hostcore_nats.client import Connection, connected, server_error
from hostcore_nats.jetstream import NOT_FOUND, JetStreamError, call
from hostcore_nats.protocol import Control, Frame, Msg
from hostcore_nats.server import Server, server_from
from hostcore_nats.subjects import filter_subject

HEARTBEAT_NS = 5 * 10**9
READ_WAIT_S = 1.0
CONTROL_STATUS = "100"  # flow control requests and idle heartbeats


def server_of(url: str) -> Server:
    """The server and options of a tail URL (its query holds the options)."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    try:
        return server_from(parts._replace(query="").geturl(), options)
    except OptionError as error:
        raise SourceError(str(error)) from error


def deliver_policy(query: TailQuery) -> dict[str, Any]:
    if query.start_seq is not None:
        return {"deliver_policy": "by_start_sequence", "opt_start_seq": max(1, query.start_seq)}
    if query.start_time_ns is not None:
        start = datetime.fromtimestamp(query.start_time_ns / 10**9, UTC)
        return {"deliver_policy": "by_start_time", "opt_start_time": start.isoformat()}
    return {"deliver_policy": "all"}


def tail(url: str, query: TailQuery, output: Output) -> None:
    server = server_of(url)
    try:
        connection = Connection(server, "hostcore-tail")
    except OSError as error:
        raise SourceError(f"cannot reach NATS at {server.url}: {error}") from error
    follower = Follower(server, connection, query, output)
    try:
        follower.run()
    finally:
        follower.close()


class Follower:
    def __init__(self, server: Server, connection: Connection, query: TailQuery, output: Output):
        self._server = server
        self._connection: Connection | None = connection
        self._query = query
        self._output = output
        self._policy = deliver_policy(query)
        self._consumer = ""
        self._deliver = b""
        self._sid = 0
        self._created = 0
        self._next_delivery = 1

    def run(self) -> None:
        try:
            call(self._live(), f"STREAM.INFO.{self._server.stream}")
        except JetStreamError as error:
            if error.code != NOT_FOUND:
                raise SourceError(f"{self._server.url}: {error}") from error
            raise SourceError(
                f"no stream {self._server.stream!r} on the server: has a nats sink run yet?"
            ) from error
        if not self._create() and not self._query.follow:
            return
        while True:
            try:
                frames = self._live().frames(READ_WAIT_S)
            except OSError:
                self._connection = None  # a new one, and the consumer again, from where it was
                self._create()
                continue
            for frame in frames:
                if not self._take(frame):
                    return

    def _live(self) -> Connection:
        if self._connection is None:
            self._connection = connected(self._server, "hostcore-tail")
            assert self._connection is not None
        return self._connection

    def _create(self) -> bool:
        """A new consumer from where the last one was; False if it has nothing to deliver."""
        self._delete()
        connection = self._live()
        self._created += 1
        self._deliver = f"{connection.inbox}.deliver.{self._created}".encode()
        # Its own subscription (sid 1 is the inbox's): JetStream pushes only to a
        # subscription of the deliver subject itself, not to a wildcard that covers it.
        self._sid = self._created + 1
        connection.send(protocol.subscribe(self._deliver.decode(), self._sid))
        config = {
            "deliver_subject": self._deliver.decode(),
            "filter_subject": filter_subject(self._query.hosts, self._query.events),
            "ack_policy": "none",
            "replay_policy": "instant",
            "flow_control": True,
            "idle_heartbeat": HEARTBEAT_NS,
            "mem_storage": True,
            "num_replicas": 1,
            **self._policy,
        }
        try:
            info = call(
                connection,
                f"CONSUMER.CREATE.{self._server.stream}",
                {
                    "stream_name": self._server.stream,
                    "config": config,
                },
            )
        except (JetStreamError, OSError) as error:
            raise SourceError(f"cannot read {self._server.stream!r}: {error}") from error
        self._consumer = str(info.get("name", ""))
        self._next_delivery = 1
        return int(info.get("num_pending", 0)) > 0

    def _take(self, frame: Frame) -> bool:
        """Show what ``frame`` delivers; False once a ``--no-follow`` has shown everything."""
        if isinstance(frame, Control):
            if frame.op == "-ERR":
                raise SourceError(f"{self._server.url}: {server_error(frame.text)}")
            return True
        if isinstance(frame, tuple) or frame.sid != self._sid:
            return True  # a late reply, or from a consumer replaced since
        if frame.status == CONTROL_STATUS:
            self._answer_control(frame)
            return True
        tokens = frame.reply.split(
            b"."
        )  # $JS.ACK.<stream>.<consumer>.<n>.<sseq>.<dseq>.<t>.<pending>
        stream_seq, delivery, pending = int(tokens[-4]), int(tokens[-3]), int(tokens[-1])
        if delivery != self._next_delivery:  # a gap: start again after the last one shown
            self._create()
            return True
        self._next_delivery += 1
        self._policy = {"deliver_policy": "by_start_sequence", "opt_start_seq": stream_seq + 1}
        event = msgpack.unpackb(frame.payload, raw=False)
        if self._query.wants(event):
            self._output(event)
        return self._query.follow or pending > 0

    def _answer_control(self, frame: Msg) -> None:
        """Flow control asks for an empty reply; a heartbeat may name a stalled one."""
        reply = frame.reply.decode() or frame.header("Nats-Consumer-Stalled")
        if reply:
            self._live().send(protocol.publish(reply, b""))

    def _delete(self) -> None:
        if self._consumer and self._connection is not None:
            with contextlib.suppress(JetStreamError, OSError):
                self._connection.send(protocol.unsubscribe(self._sid))
                call(self._connection, f"CONSUMER.DELETE.{self._server.stream}.{self._consumer}")
        self._consumer = ""

    def close(self) -> None:
        self._delete()
        if self._connection is not None:
            self._connection.close()
