"""A Fluent Forward v1 receiver on loopback, written from the specification (no Fluent Bit or
Fluentd is packaged for Debian 12): the tests' and the benchmark's receiver.

It decodes Message, Forward, PackedForward and CompressedPackedForward modes, acks
chunks, and keeps ``(tag, time, record)`` of every message it accepted. Optionally it
speaks TLS (with or without client certificates), and asks for the shared-key handshake
(HELO, PING, PONG) and for a user's password, as Fluentd's ``<security>`` does.

``python tests/fluent_receiver.py [--tls CERT KEY] [--shared-key KEY]`` runs one in a
process of its own (for the benchmark): it prints ``listening PORT``, then, on SIGTERM,
``received N``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import msgpack

HOSTNAME = "receiver.test"
WAIT_TIMEOUT_S = 60.0

Event = tuple[str, Any, dict[str, Any]]


def sha512_hex(*parts: str | bytes) -> str:
    return hashlib.sha512(
        b"".join(p.encode() if isinstance(p, str) else p for p in parts)
    ).hexdigest()


class FluentReceiver:
    """With ``refuse_first``, it closes the first connection after reading one message
    without acking it, as a receiver that crashed would. ``refusals`` lists why each
    refused client was refused (its TLS handshake or its PING).

    A check that fails in its threads (a message that breaks the specification) stops
    that connection, and fails the test when the test reads ``events``.
    """

    def __init__(
        self,
        refuse_first: bool = False,
        tls: ssl.SSLContext | None = None,
        shared_key: str | None = None,
        users: Mapping[str, str] | None = None,
        keep: bool = True,
        impostor: bool = False,
    ) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.refuse_first = refuse_first
        self.tls = tls
        self.shared_key = shared_key
        self.users = dict(users or {})
        self.keep = keep
        self.impostor = impostor  # accepts every PING, but cannot prove it has the key
        self.received: list[Event] = []
        self.count = 0  # events received, kept or not
        self.refusals: list[str] = []
        self.failure: BaseException | None = None
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def events(self) -> list[Event]:
        if self.failure is not None:
            raise AssertionError("the receiver stopped on a bad message") from self.failure
        return self.received

    def _serve(self) -> None:
        while True:
            connection, _ = self.listener.accept()
            threading.Thread(target=self._connection, args=(connection,), daemon=True).start()

    def _connection(self, connection: socket.socket) -> None:
        try:
            if self.tls is not None:
                connection = self.tls.wrap_socket(connection, server_side=True)
            unpacker = msgpack.Unpacker(raw=False)
            if self.shared_key is None or self._handshake(connection, unpacker):
                self._read(connection, unpacker)
        except (ssl.SSLError, ConnectionError) as error:
            self.refusals.append(str(error))
        except BaseException as failure:  # in this thread, it would fail no test
            self.failure = failure
        finally:
            connection.close()

    def _next(self, connection: socket.socket, unpacker: msgpack.Unpacker) -> Any:
        while True:
            for received in unpacker:
                return received
            chunk = connection.recv(65536)
            if not chunk:
                raise ConnectionResetError("the client left in the handshake")
            unpacker.feed(chunk)

    def _handshake(self, connection: socket.socket, unpacker: msgpack.Unpacker) -> bool:
        assert self.shared_key is not None
        nonce, auth = os.urandom(16), os.urandom(16) if self.users else b""
        helo = ["HELO", {"nonce": nonce, "auth": auth, "keepalive": True}]
        connection.sendall(msgpack.packb(helo, use_bin_type=True))
        ping = self._next(connection, unpacker)
        if not (isinstance(ping, list) and len(ping) == 6 and ping[0] == "PING"):
            raise ConnectionResetError(f"expected a PING, got {ping!r:.40}")
        _, client_hostname, salt, digest, username, password_digest = ping
        reason = ""
        if self.impostor:
            pass
        elif digest != sha512_hex(salt, client_hostname, nonce, self.shared_key):
            reason = "shared key mismatch"
        elif self.users and (
            username not in self.users
            or password_digest != sha512_hex(auth, username, self.users[username])
        ):
            reason = "username/password mismatch"
        key = "not the key" if self.impostor else self.shared_key
        proof = sha512_hex(salt, HOSTNAME, nonce, key)
        connection.sendall(msgpack.packb(["PONG", not reason, reason, HOSTNAME, proof]))
        if reason:
            self.refusals.append(reason)
        return not reason

    def _read(self, connection: socket.socket, unpacker: msgpack.Unpacker) -> None:
        while chunk := connection.recv(65536):
            unpacker.feed(chunk)
            for received in unpacker:
                if self.refuse_first:
                    self.refuse_first = False
                    return
                tag, entries, option = decode(received)
                self.count += len(entries)
                if self.keep:
                    self.received.extend((tag, time, record) for time, record in entries)
                if "chunk" in option:
                    connection.sendall(msgpack.packb({"ack": option["chunk"]}))

    def wait_for(self, count: int) -> list[Event]:
        deadline = time.monotonic() + WAIT_TIMEOUT_S
        while len(self.events) < count:
            assert time.monotonic() < deadline, f"{len(self.events)} events, not {count}"
            time.sleep(0.01)
        return self.events


def decode(received: list[Any]) -> tuple[str, list[list[Any]], dict[str, Any]]:
    """(tag, entries, option) of a message in any mode, as the specification lays them out."""
    tag, second = received[0], received[1]
    option = received[2] if len(received) > 2 and isinstance(received[2], dict) else {}
    if isinstance(second, bytes):  # PackedForward, gzipped if the option says so
        stream = msgpack.Unpacker(raw=False)
        stream.feed(gzip.decompress(second) if option.get("compressed") == "gzip" else second)
        entries = list(stream)
    elif isinstance(second, list):  # Forward
        entries = second
    else:  # Message: [tag, time, record, option?]
        return tag, [[second, received[2]]], received[3] if len(received) > 3 else {}
    assert option.get("size", len(entries)) == len(entries)
    return tag, entries, option


def main() -> None:
    parser = argparse.ArgumentParser(description="a Fluent Forward receiver on 127.0.0.1")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--shared-key")
    args = parser.parse_args()
    context = None
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*args.tls)
    receiver = FluentReceiver(tls=context, shared_key=args.shared_key, keep=False)

    def report(*_: object) -> None:
        print("received", receiver.count, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, report)
    print("listening", receiver.port, flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
