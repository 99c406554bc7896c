"""Fluent Forward's handshake: the shared key, and a user's password, proven without sending them.

On each new connection the receiver sends ``["HELO", {"nonce", "auth"}]``; the client
answers ``["PING", hostname, salt, sha512_hex(salt + hostname + nonce + shared_key),
username, sha512_hex(auth + username + password)]`` and the receiver ends the handshake
with ``["PONG", ok, reason, its hostname, sha512_hex(salt + its hostname + nonce +
shared_key)]``: that last digest proves the receiver has the key too, so a host never
sends its events to an impostor that merely accepts them.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from typing import Any

import msgpack

from hostcore.sinks.tls import Refused

HELO_WAIT_S = 2.0  # a receiver that asks for the key sends HELO as soon as it accepts


def hex_digest(*parts: str | bytes) -> str:
    """SHA-512 of the parts one after another, as the specification writes its digests."""
    digest = hashlib.sha512()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
    return digest.hexdigest()


def _receive(sock: socket.socket, unpacker: msgpack.Unpacker, expected: str) -> list[Any]:
    """The next handshake message, which must be an ``expected`` one."""
    while True:
        for received in unpacker:
            if isinstance(received, list) and received and received[0] == expected:
                return received
            raise Refused(f"the receiver sent {received!r} where {expected} was due")
        chunk = sock.recv(4096)
        if not chunk:
            raise Refused(f"the receiver closed the connection where {expected} was due")
        unpacker.feed(chunk)


@dataclass(frozen=True)
class ForwardAuth:
    """What this host proves on each connection: the shared key, and a user if one is set."""

    shared_key: str
    hostname: str
    username: str = ""
    password: str = ""

    def handshake(self, sock: socket.socket) -> None:
        """HELO, PING, PONG on a new connection; ``Refused`` says why it failed."""
        unpacker = msgpack.Unpacker(raw=False)
        timeout = sock.gettimeout()
        sock.settimeout(HELO_WAIT_S)
        try:
            helo = _receive(sock, unpacker, "HELO")
        except TimeoutError as error:
            raise Refused(
                f"the receiver sent no HELO within {HELO_WAIT_S:g} s: it does not ask for a "
                "shared key (is shared_key set in its configuration?), so it cannot prove it"
            ) from error
        finally:
            sock.settimeout(timeout)
        options = helo[1] if len(helo) > 1 and isinstance(helo[1], dict) else {}
        nonce, auth = options.get("nonce", b""), options.get("auth", b"")
        if auth and not self.username:
            raise Refused("the receiver asks for a user: set username and password")
        salt = os.urandom(16).hex()
        ping = [
            "PING",
            self.hostname,
            salt,
            hex_digest(salt, self.hostname, nonce, self.shared_key),
            self.username if auth else "",
            hex_digest(auth, self.username, self.password) if auth else "",
        ]
        sock.sendall(msgpack.packb(ping))
        pong = _receive(sock, unpacker, "PONG")
        if len(pong) < 5 or pong[1] is not True:
            reason = pong[2] if len(pong) > 2 else ""
            raise Refused(f"the receiver refused the handshake: {reason or 'no reason given'}")
        if pong[4] != hex_digest(salt, pong[3], nonce, self.shared_key):
            raise Refused(
                "the receiver's PONG does not prove that it has the shared key: "
                "it is not the receiver configured with it"
            )
