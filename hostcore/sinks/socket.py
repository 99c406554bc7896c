"""The ``socket`` sink: the msgpack stream to a collector over a Unix socket or TCP.

Each event is sent as it comes, one msgpack map after another, as the ``file`` sink
writes them: a collector reads them with ``msgpack.Unpacker``. While the collector
is unreachable the sink retries with backoff, holding the event in hand; the core's
queue for the sink (``queue_size``) is the buffer, and what overflows it is counted.
Over TCP it may use TLS (``tls=true`` and the options of hostcore/sinks/tls.py).
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import structlog

from hostcore import hookimpl
from hostcore.options import Address, OptionError, number_option, parse_address
from hostcore.sinks.base import Sink, SinkSpec
from hostcore.sinks.tls import OPTIONS as TLS_OPTIONS
from hostcore.sinks.tls import Refused, Tls, check_idle, tls_from

FIRST_BACKOFF_S = 0.05
MIN_BACKOFF_S = 0.001  # the longest wait between reconnects may not be shorter
DEFAULT_MAX_BACKOFF_S = 5.0
ACK_TIMEOUT_S = 10.0
# Messages sent with an ack and not yet acknowledged, at most: the collector reads one
# while the next is made and sent, rather than the sink waiting for each ack in turn.
ACK_WINDOW = 2
CONNECT_TIMEOUT_S = 10.0  # connecting and any handshake: a peer that never answers is retried
# Readable or hung up: the collector sends nothing but acks, so either means it has gone
# when none is awaited.
_GONE = select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLRDHUP

log = structlog.get_logger()

Handshake = Callable[[socket.socket], None]
"""What a protocol exchanges on each new connection before sending (raises ``Refused``)."""


class Connection:
    """A stream to one address that reconnects, with backoff, until a send goes through.

    A send that fails is sent again, whole, on the next connection: the collector
    discards the cut-off start of it with the connection that broke. A send may ask
    for an acknowledgement (a msgpack map ``{"ack": ID}``, as Fluent Forward has it):
    it is kept until one comes, and sent again on each new connection after the
    others still unacknowledged (all of them, when one is not acknowledged in time);
    ``ACK_WINDOW`` of them at most are in flight.
    """

    def __init__(
        self,
        address: Address,
        max_backoff_s: float,
        name: str,
        tls: Tls | None = None,
        handshake: Handshake | None = None,
    ) -> None:
        self._family, self._address = address
        self._max_backoff_s = max_backoff_s
        self._name = name
        self._tls = tls
        self._handshake = handshake
        self._sock: socket.socket | None = None
        self._poll = select.poll()
        # Messages sent with an ack id and not acknowledged yet, in the order sent, with
        # the events each holds; those this connection has carried; the replies read.
        self._unacked: dict[str, tuple[bytes, int]] = {}
        self._sending = 0  # the events of a message without ack, while it is being sent
        self._sent: set[str] = set()
        self._replies = msgpack.Unpacker(raw=False)

    @property
    def _host(self) -> str:
        return "" if self._family == socket.AF_UNIX else str(self._address[0])

    @property
    def _peer(self) -> str:
        if self._family == socket.AF_UNIX:
            return f"unix:{self._address}"
        host, port = self._address[:2]
        return f"[{host}]:{port}" if self._family == socket.AF_INET6 else f"{host}:{port}"

    def start(self) -> None:
        """Connect now, so that a server that refuses this host's certificate or
        credentials stops the run at its start; one not reachable yet is retried later."""
        try:
            self._connect()
        except Refused as error:
            raise OptionError(str(error)) from error
        except OSError as error:
            log.warning(
                "sink not connected yet", sink=self._name, address=self._peer, error=str(error)
            )

    @property
    def held_events(self) -> int:
        """Events in the messages not delivered yet: the one being sent, and those that
        wait for their ack."""
        return self._sending + sum(events for _, events in self._unacked.values())

    def send(self, data: bytes, ack: str | None = None, events: int = 0) -> None:
        """Send ``data`` (which holds ``events`` events) until it goes through. With ``ack``,
        it is kept until the collector acknowledges it, and sent again on each new
        connection; past ``ACK_WINDOW`` unacknowledged messages, wait for an ack."""
        if ack is not None:
            self._unacked[ack] = (data, events)
            self._retried(lambda: self._send_once(b"", ACK_WINDOW - 1))
            return
        self._sending = events
        try:
            self._retried(lambda: self._send_once(data, 0))
        finally:
            self._sending = 0

    def settle(self) -> None:
        """Wait until every message sent with an ack has been acknowledged."""
        if self._unacked:
            self._retried(lambda: self._send_once(b"", 0))

    def _retried(self, attempt: Callable[[], None]) -> None:
        """``attempt()`` until it raises no OSError, reconnecting with backoff."""
        backoff = FIRST_BACKOFF_S
        while True:
            try:
                attempt()
                return
            except OSError as error:
                self._disconnect()
                if backoff == FIRST_BACKOFF_S:
                    log.warning(
                        "sink refused" if isinstance(error, Refused) else "sink disconnected",
                        sink=self._name,
                        address=self._peer,
                        error=str(error),
                        retry_in_s=backoff,
                    )
                time.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)

    def _send_once(self, data: bytes, unacked: int) -> None:
        """Send what this connection has not carried yet (the messages that wait for an ack,
        then ``data``), then read acks until at most ``unacked`` messages wait."""
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        if self._poll.poll(0):  # checked before sending: a send to a closed TCP peer succeeds
            if self._sent:
                self._read_acks(self._sock, 0.0)  # acks of what is in flight, or a hang-up
            else:
                check_idle(self._sock, self._peer, self._tls, self._host)
        for ack, (message, _) in self._unacked.items():
            if ack not in self._sent:
                self._sock.sendall(message)
                self._sent.add(ack)
        if data:
            self._sock.sendall(data)
        while len(self._unacked) > unacked:
            self._read_acks(self._sock, ACK_TIMEOUT_S)

    def _read_acks(self, sock: socket.socket, timeout_s: float) -> None:
        """Take the acks that come within ``timeout_s`` (0: those here already); each must be
        of a message in flight. No ack in time is a TimeoutError (an OSError: sent again)."""
        sock.settimeout(timeout_s)
        try:
            received = sock.recv(4096)
        except (BlockingIOError, ssl.SSLWantReadError):  # with 0: none yet, or TLS's own
            return
        finally:
            sock.settimeout(None)
        if not received:
            raise ConnectionResetError("the collector closed before acknowledging")
        self._replies.feed(received)
        for reply in self._replies:
            ack = reply.get("ack") if isinstance(reply, dict) else None
            if ack not in self._sent:
                raise ConnectionError(f"expected an ack of {sorted(self._sent)}, got {reply!r}")
            self._sent.discard(ack)
            del self._unacked[ack]

    def _connect(self) -> None:
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        if self._family != socket.AF_UNIX:
            # Whole messages are sent at once; Nagle would hold back the end of each until
            # the peer's delayed ack (40 ms) where a TLS record or a wait for an ack follows.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.connect(self._address)
            if self._tls is not None:
                sock = self._tls.wrap(sock, self._host, self._peer)
            if self._handshake is not None:
                self._handshake(sock)
            elif self._tls is not None:
                self._tls.await_refusal(sock, self._host, self._peer)
        except OSError:
            sock.close()
            raise
        sock.settimeout(None)
        self._sock = sock
        self._sent.clear()
        self._replies = msgpack.Unpacker(raw=False)
        self._poll.register(sock, _GONE)
        log.info("sink connected", sink=self._name, address=self._peer, tls=self._tls is not None)

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._poll.unregister(self._sock)
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        self._disconnect()


class SocketSink:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        self._connection.send(packed)

    def flush(self) -> None:
        """Nothing is held: each event was sent as it came."""

    def close(self) -> None:
        self._connection.close()


def address_and_tls(options: Mapping[str, str]) -> tuple[Address, Tls | None]:
    """The ``address`` option, and the TLS the options ask for, which only a TCP address
    takes (a Unix socket's peer is on this host)."""
    address = parse_address(options["address"])
    tls = tls_from(options)
    if tls is not None and address[0] == socket.AF_UNIX:
        raise OptionError("tls is for TCP addresses: a Unix socket never leaves the host")
    return address, tls


def _settings(options: Mapping[str, str]) -> tuple[Address, float, Tls | None]:
    """The collector's address, the longest wait between reconnects, and TLS."""
    if "address" not in options:
        raise OptionError(
            "needs address=unix:PATH or address=HOST:PORT, "
            "e.g. --sink socket:address=127.0.0.1:24000"
        )
    max_backoff = number_option(options, "max_backoff_s", DEFAULT_MAX_BACKOFF_S, MIN_BACKOFF_S)
    address, tls = address_and_tls(options)
    return address, max_backoff, tls


def _open(options: Mapping[str, str]) -> Sink:
    address, max_backoff, tls = _settings(options)
    connection = Connection(address, max_backoff, "socket", tls)
    connection.start()
    return SocketSink(connection)


@hookimpl
def hostcore_register_sinks(register: Callable[[SinkSpec], None]) -> None:
    register(
        SinkSpec(
            name="socket",
            open=_open,
            check=_settings,
            options={
                "address": "unix:PATH, HOST:PORT or [IPv6]:PORT of the collector",
                "max_backoff_s": "longest wait between reconnects, in seconds "
                f"(default {DEFAULT_MAX_BACKOFF_S})",
                **TLS_OPTIONS,
            },
            description="msgpack stream to a collector over a Unix socket or TCP (TLS)",
        )
    )
