"""The ``socket`` sink: the msgpack stream to a collector over a Unix socket or TCP.

Each event is sent as it comes, one msgpack map after another, as the ``file`` sink
writes them: a collector reads them with ``msgpack.Unpacker``. While the collector
is unreachable the sink retries with backoff, holding the event in hand; the core's
queue for the sink (``queue_size``) is the buffer, and what overflows it is counted.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import structlog

from hostcore import hookimpl
from hostcore.options import Address, OptionError, number_option, parse_address
from hostcore.sinks.base import Sink, SinkSpec

FIRST_BACKOFF_S = 0.05
MIN_BACKOFF_S = 0.001  # the longest wait between reconnects may not be shorter
DEFAULT_MAX_BACKOFF_S = 5.0
ACK_TIMEOUT_S = 10.0
# Readable or hung up: the collector sends nothing unasked, so either means it has gone.
_GONE = select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLRDHUP

log = structlog.get_logger()


class Connection:
    """A stream to one address that reconnects, with backoff, until a send goes through.

    A send that fails is sent again, whole, on the next connection: the collector
    discards the cut-off start of it with the connection that broke. A send may ask
    for an acknowledgement (a msgpack map ``{"ack": ID}``, as Fluent Forward has it):
    without one in time, it is sent again.
    """

    def __init__(self, address: Address, max_backoff_s: float, name: str) -> None:
        self._family, self._address = address
        self._max_backoff_s = max_backoff_s
        self._name = name
        self._sock: socket.socket | None = None
        self._poll = select.poll()

    def send(self, data: bytes, ack: str | None = None) -> None:
        backoff = FIRST_BACKOFF_S
        while True:
            try:
                self._send_once(data, ack)
                return
            except OSError as error:
                self._disconnect()
                if backoff == FIRST_BACKOFF_S:
                    log.warning(
                        "sink disconnected",
                        sink=self._name,
                        address=str(self._address),
                        error=str(error),
                        retry_in_s=backoff,
                    )
                time.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)

    def _send_once(self, data: bytes, ack: str | None) -> None:
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        if self._poll.poll(0):  # checked before sending: a send to a closed TCP peer succeeds
            raise ConnectionResetError("the collector closed the connection")
        self._sock.sendall(data)
        if ack is not None:
            self._await_ack(self._sock, ack)

    @staticmethod
    def _await_ack(sock: socket.socket, ack: str) -> None:
        sock.settimeout(ACK_TIMEOUT_S)  # a TimeoutError is an OSError: sent again
        try:
            replies = msgpack.Unpacker(raw=False)
            while True:
                received = sock.recv(4096)
                if not received:
                    raise ConnectionResetError("the collector closed before acknowledging")
                replies.feed(received)
                for reply in replies:
                    if not isinstance(reply, dict) or reply.get("ack") != ack:
                        raise ConnectionError(f"expected ack {ack!r}, got {reply!r}")
                    return
        finally:
            sock.settimeout(None)

    def _connect(self) -> None:
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.connect(self._address)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._poll.register(sock, _GONE)
        log.info("sink connected", sink=self._name, address=str(self._address))

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


def _settings(options: Mapping[str, str]) -> tuple[Address, float]:
    """The collector's address and the longest wait between reconnects."""
    if "address" not in options:
        raise OptionError(
            "needs address=unix:PATH or address=HOST:PORT, "
            "e.g. --sink socket:address=127.0.0.1:24000"
        )
    max_backoff = number_option(options, "max_backoff_s", DEFAULT_MAX_BACKOFF_S, MIN_BACKOFF_S)
    return parse_address(options["address"]), max_backoff


def _open(options: Mapping[str, str]) -> Sink:
    return SocketSink(Connection(*_settings(options), "socket"))


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
            },
            description="msgpack stream to a collector over a Unix socket or TCP",
        )
    )
