"""The NATS client protocol on the wire: what the sink sends, and a reader for what comes back.

Only what hostcore speaks: ``CONNECT``, ``PUB``/``HPUB``, ``SUB``, ``UNSUB``, ``PING``
and ``PONG`` out; ``INFO``, ``MSG``/``HMSG``, ``PING``, ``PONG``, ``+OK`` and ``-ERR``
in (https://docs.nats.io/reference/reference-protocols/nats-protocol). The reader is
written for a stream of small messages (JetStream's acks): one scan per line, no copy
of the buffer per message, and for the replies to numbered reply subjects (the acks of
what the sink published) one regex and a tuple each.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CRLF = b"\r\n"
PING = b"PING\r\n"
PONG = b"PONG\r\n"
MAX_CONTROL_LINE = 4096  # the server's default: a longer line without CRLF is not NATS
# MSG subject sid [reply] size
_PLAIN_MSG = re.compile(
    rb"MSG (\S+) +(\d+) +(?:(\S+) +)?(?P<size>\d+)\r\n"
)  # the server may double spaces


class ProtocolError(ConnectionError):
    """The server sent something that is not the NATS protocol."""


def connect(fields: Mapping[str, Any]) -> bytes:
    return b"CONNECT " + json.dumps(fields, separators=(",", ":")).encode() + CRLF


def subscribe(subject: str, sid: int) -> bytes:
    return b"SUB %s %d\r\n" % (subject.encode(), sid)


def unsubscribe(sid: int) -> bytes:
    return b"UNSUB %d\r\n" % sid


def publish(subject: str, payload: bytes, reply: str = "") -> bytes:
    head = f"PUB {subject} {reply} {len(payload)}" if reply else f"PUB {subject} {len(payload)}"
    return head.encode() + CRLF + payload + CRLF


def hpublish(subject: bytes, reply: bytes, head: bytes, payload: bytes) -> bytes:
    """HPUB: a message with a header block (``NATS/1.0``, ``Name: value`` lines, an empty
    line)."""
    size = len(head)
    return b"HPUB %b %b %d %d\r\n%b%b\r\n" % (
        subject,
        reply,
        size,
        size + len(payload),
        head,
        payload,
    )


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs several times more
class Msg:
    """A MSG or HMSG: ``head`` is its header block (``b""`` for MSG)."""

    subject: bytes
    sid: int
    reply: bytes
    head: bytes
    payload: bytes

    @property
    def status(self) -> str:
        """The status code of the header line (``NATS/1.0 503`` -> ``503``), or ``""``."""
        line = self.head.split(CRLF, 1)[0]
        return line[9:12].decode() if len(line) >= 12 else ""

    def header(self, name: str) -> str:
        """The value of the header field ``name`` (case as sent), or ``""``."""
        prefix = name.encode() + b":"
        for line in self.head.split(CRLF)[1:]:
            if line.startswith(prefix):
                return line[len(prefix) :].strip().decode()
        return ""


@dataclass(frozen=True, slots=True)
class Control:
    """Any other operation: ``op`` is ``INFO`` (with ``info``), ``PING``, ``PONG``, ``+OK``
    or ``-ERR`` (with ``text``, the server's message without its quotes)."""

    op: str
    text: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)


Reply = tuple[int, bytes]
"""A MSG without header or reply to a numbered subject (``<numbered><number>``): the number
and the payload."""

Frame = Msg | Control | Reply


class Reader:
    """Turns bytes from the server into frames; keeps an incomplete frame for the next feed.

    With ``numbered`` (a subject prefix such as ``_INBOX.x.``), a plain MSG to that prefix
    and a number comes as a :data:`Reply`: JetStream's acks, most of what a publisher reads.
    """

    def __init__(self, numbered: bytes = b"") -> None:
        self._buffer = b""
        # A MSG to numbered + digits with a sid and a size, no reply: never a match otherwise.
        self._numbered = re.compile(
            b"MSG " + re.escape(numbered) + rb"(\d+) +\d+ +(?P<size>\d+)\r\n"
            if numbered
            else rb"(?!)"
        )

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer + data if self._buffer else data
        frames: list[Frame] = []
        start = 0
        replies, plain = self._numbered, _PLAIN_MSG
        while True:
            # The common cases, acks and other small messages: one regex or two, in C.
            if found := replies.match(buffer, start) or plain.match(buffer, start):
                body = found.end()
                end = body + int(found["size"])
                if len(buffer) < end + 2:
                    break
                if found.re is replies:
                    frames.append((int(found[1]), buffer[body:end]))
                else:
                    frames.append(
                        Msg(found[1], int(found[2]), found[3] or b"", b"", buffer[body:end])
                    )
                start = end + 2
                continue
            end = buffer.find(CRLF, start)
            if end < 0:
                break
            line = buffer[start:end]
            if line.startswith((b"MSG ", b"HMSG ")):
                message = _message(line, buffer, end + 2)
                if message is None:
                    break  # its payload has not all come yet
                frames.append(message[0])
                start = message[1]
                continue
            frames.append(_control(line))
            start = end + 2
        self._buffer = buffer[start:]
        if len(self._buffer) > MAX_CONTROL_LINE and CRLF not in self._buffer[:MAX_CONTROL_LINE]:
            raise ProtocolError(f"not the NATS protocol: {self._buffer[:40]!r}")
        return frames


def _message(line: bytes, buffer: bytes, body: int) -> tuple[Msg, int] | None:
    """The MSG/HMSG of control ``line`` whose payload starts at ``body``, and where the
    next frame starts; None while the payload is incomplete."""
    parts = line.split()
    try:
        if parts[0] == b"HMSG":  # HMSG subject sid [reply] header-size total-size
            head_size, size = int(parts[-2]), int(parts[-1])
            reply = parts[3] if len(parts) == 6 else b""
        else:  # MSG subject sid [reply] size
            head_size, size = 0, int(parts[-1])
            reply = parts[3] if len(parts) == 5 else b""
        sid = int(parts[2])
    except (IndexError, ValueError) as error:
        raise ProtocolError(f"malformed {line[:80]!r}") from error
    end = body + size
    if len(buffer) < end + 2:
        return None
    head = buffer[body : body + head_size]
    return Msg(parts[1], sid, reply, head, buffer[body + head_size : end]), end + 2


def _control(line: bytes) -> Control:
    op, _, rest = line.partition(b" ")
    name = op.decode(errors="replace").upper()
    if name == "INFO":
        try:
            return Control(name, info=json.loads(rest))
        except ValueError as error:
            raise ProtocolError(f"malformed INFO {rest[:80]!r}") from error
    if name == "-ERR":
        return Control(name, text=rest.strip().strip(b"'").decode(errors="replace"))
    if name in ("PING", "PONG", "+OK"):
        return Control(name)
    raise ProtocolError(f"not the NATS protocol: {line[:40]!r}")
