"""A synchronous NATS connection: TLS that cannot fall back, every login, and errors in words.

Why not the asyncio client (nats-py): it upgrades to TLS only when the server's INFO
asks for it, so a server (or anyone in between) that does not ask gets the CONNECT, and
its credentials, in clear text; and its per-message path costs about 6 us of CPU where
this one, with batches written at once and acks read in bulk, costs about 2.4 us (on
the 2-core test VM), which is what lets one host publish 100,000 events a second. Here
``tls`` on means the handshake happens before CONNECT, whatever the server says.

One connection is used from one thread. ``frames`` answers the server's PINGs itself.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import select
import socket
import ssl
import time
from collections.abc import Callable

import structlog

from hostcore import Refused
from hostcore_nats import protocol
from hostcore_nats.protocol import Control, Frame, Msg
from hostcore_nats.server import Server

CONNECT_TIMEOUT_S = 5.0
IO_TIMEOUT_S = 10.0  # a send that cannot go on this long means the server is gone
READ_SIZE = 1 << 20
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 2.0
_PERMISSION = re.compile(r'permissions violation for (publish|subscription) to "?([^"\s]+)"?', re.I)

log = structlog.get_logger()


class PermissionDenied(Refused):
    """The server refused one publish or subscription; the connection goes on."""

    def __init__(self, action: str, subject: str) -> None:
        super().__init__(f"the server does not let this user {action} {subject}")
        self.publishing = action == "publish to"
        self.subject = subject


def server_error(text: str) -> Exception:
    """A ``-ERR`` from the server as the exception it means."""
    denied = _PERMISSION.search(text)
    if denied:
        action = "publish to" if denied.group(1).lower() == "publish" else "subscribe to"
        return PermissionDenied(action, denied.group(2))
    lowered = text.lower()
    if "authorization" in lowered or "authentication" in lowered:
        return Refused(f"the server refused the login: {text}")
    if "tls required" in lowered:
        return Refused(f"the server requires TLS: set tls=true ({text})")
    return ConnectionError(f"the server closed the connection: {text}")


class Connection:
    """Logged in, with ``inbox`` (``_INBOX.<random>``) subscribed as ``inbox.>`` (sid 1).
    A plain message to ``inbox.<number>`` is read as a ``Reply`` (number, payload)."""

    def __init__(self, server: Server, name: str) -> None:
        self.server = server
        self.inbox = f"_INBOX.{secrets.token_hex(11)}"
        self.info: dict[str, object] = {}
        self._reader = protocol.Reader(f"{self.inbox}.".encode())
        self._later: list[Frame] = []  # read with a reply that was waited for, not yet taken
        self._peer = f"{server.host}:{server.port}"
        self._sock = socket.create_connection((server.host, server.port), CONNECT_TIMEOUT_S)
        # Batches are written whole: Nagle would only hold back the last segment of each.
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._log_in(name)
        except BaseException:
            self._sock.close()
            raise
        self._sock.settimeout(IO_TIMEOUT_S)

    @property
    def max_payload(self) -> int:
        value = self.info.get("max_payload", 1 << 20)
        return value if isinstance(value, int) else 1 << 20

    def _log_in(self, name: str) -> None:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        first = self._until(lambda f: isinstance(f, Control) and f.op == "INFO", deadline)
        assert isinstance(first, Control)
        self.info = dict(first.info)
        offered = bool(self.info.get("tls_required") or self.info.get("tls_available"))
        if self.server.tls is not None:
            if not offered:
                raise Refused(
                    f"TLS with {self._peer}: the server does not offer TLS (tls=true here: "
                    "hostcore never falls back to clear text)"
                )
            self._sock = self.server.tls.wrap(self._sock, self.server.host, self._peer)
        elif self.info.get("tls_required"):
            raise Refused(f"{self._peer} requires TLS: set tls=true (and ca_file)")
        nonce = self.info.get("nonce")
        fields: dict[str, object] = {
            "verbose": False,
            "pedantic": False,
            "headers": True,
            "no_responders": True,
            "protocol": 1,
            "lang": "python3",
            "version": "hostcore",
            "name": name,
            "tls_required": self.server.tls is not None,
            **self.server.credentials.connect_fields(nonce if isinstance(nonce, str) else None),
        }
        self.send(
            protocol.connect(fields) + protocol.subscribe(f"{self.inbox}.>", 1) + protocol.PING
        )
        self._until(lambda f: isinstance(f, Control) and f.op == "PONG", deadline)

    def _until(self, wanted: Callable[[Frame], bool], deadline: float) -> Frame:
        """The first frame ``wanted`` takes before ``deadline``; a -ERR before it raises.
        The others that came meanwhile are kept, in order, for ``frames`` to return."""
        skipped: list[Frame] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self._peer} did not answer within {CONNECT_TIMEOUT_S:g} s")
            frames = self.frames(left)
            for index, frame in enumerate(frames):
                if wanted(frame):
                    self._later = skipped + frames[index + 1 :]
                    return frame
                if isinstance(frame, Control) and frame.op == "-ERR":
                    raise server_error(frame.text)
                skipped.append(frame)

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except ssl.SSLError as error:
            raise self._refused(error) from error

    def frames(self, timeout_s: float) -> list[Frame]:
        """What the server sent within ``timeout_s`` (at once if something is there already);
        PINGs answered and left out, as +OKs are. Raises ``ConnectionError`` once it hung up."""
        if self._later:
            later, self._later = self._later, []
            return later
        waiting = isinstance(self._sock, ssl.SSLSocket) and self._sock.pending()
        if not waiting and not select.select([self._sock], [], [], max(timeout_s, 0))[0]:
            return []
        try:
            data = self._sock.recv(READ_SIZE)
            if data and isinstance(self._sock, ssl.SSLSocket):
                data += self._more_records()
        except ssl.SSLWantReadError:
            return []
        except ssl.SSLError as error:
            raise self._refused(error) from error
        if not data:
            raise ConnectionResetError(f"{self._peer} closed the connection")
        frames = self._reader.feed(data)
        if any(isinstance(f, Control) and f.op == "PING" for f in frames):
            self.send(protocol.PONG)
        return [f for f in frames if not (isinstance(f, Control) and f.op in ("PING", "+OK"))]

    def _more_records(self) -> bytes:
        """Over TLS, the records that have come besides the one a recv gives (16 KiB at
        most), so that acks are read in bulk as in clear text, not a settle loop a record."""
        chunks: list[bytes] = []
        size = 0
        with contextlib.suppress(ssl.SSLWantReadError):  # the rest of a record is on its way
            while size < READ_SIZE and select.select([self._sock], [], [], 0)[0]:
                chunk = self._sock.recv(READ_SIZE)
                if not chunk:
                    break  # the next read finds that it hung up
                chunks.append(chunk)
                size += len(chunk)
        return b"".join(chunks)

    def request(self, subject: str, payload: bytes, timeout_s: float = CONNECT_TIMEOUT_S) -> Msg:
        """Publish with a reply subject of its own and wait for the reply."""
        reply = f"{self.inbox}.request.{secrets.token_hex(4)}"
        self.send(protocol.publish(subject, payload, reply))
        wanted = reply.encode()
        frame = self._until(
            lambda f: isinstance(f, Msg) and f.subject == wanted, time.monotonic() + timeout_s
        )
        assert isinstance(frame, Msg)
        return frame

    def _refused(self, error: ssl.SSLError) -> Exception:
        tls = self.server.tls
        return tls.refused(error, self.server.host, self._peer) if tls else error

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def connected(
    server: Server, name: str, stopping: Callable[[], bool] = lambda: False
) -> Connection | None:
    """A new connection, retried with backoff (logged once per outage) until it works, or
    None once ``stopping()``; a refused login is logged with its reason, and retried."""
    backoff = FIRST_BACKOFF_S
    reported = ""
    while not stopping():
        try:
            connection = Connection(server, name)
        except OSError as error:
            if str(error) != reported:
                reported = str(error)
                level = log.error if isinstance(error, Refused) else log.warning
                level("nats not connected, retrying", name=name, url=server.url, error=reported)
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            continue
        if reported:
            log.info("nats reconnected", name=name, url=server.url)
        return connection
    return None
