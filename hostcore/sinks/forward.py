"""The ``forward`` sink: Fluent Forward protocol v1, as Fluent Bit, Fluentd and Vector receive it.

Events are sent in batches, one message per tag: Forward mode
``[tag, [[time, record], ...], option]``, PackedForward mode ``[tag, bin, option]``
where ``bin`` is the same entries one after another, or CompressedPackedForward, the
same ``bin`` gzipped. ``time`` is an EventTime (msgpack ext type 0: seconds and
nanoseconds, 32 bits each, big-endian); ``record`` is the event map, the core's own
msgpack bytes, never packed again. With ``ack=true`` each message carries a ``chunk``
id and is sent again until the receiver answers ``{"ack": chunk}``; the next message goes
out while the receiver reads one (hostcore/sinks/socket.py: ``ACK_WINDOW``). Over TCP it may use
TLS, and prove a shared key and a user to the receiver (hostcore/sinks/forward_auth.py).
"""

from __future__ import annotations

import base64
import gzip
import os
import socket
import struct
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import msgpack

from hostcore import hookimpl
from hostcore.options import Address, OptionError, flag_option, number_option, whole_number_option
from hostcore.sinks.base import Sink, SinkSpec, event_parts
from hostcore.sinks.forward_auth import ForwardAuth
from hostcore.sinks.secret import SECRET_FORMS, read_secret
from hostcore.sinks.socket import (
    DEFAULT_MAX_BACKOFF_S,
    MIN_BACKOFF_S,
    Connection,
    address_and_tls,
)
from hostcore.sinks.tls import OPTIONS as TLS_OPTIONS
from hostcore.sinks.tls import Tls

MODES = ("packed", "forward", "compressed")
# zlib's fastest level: events are alike, so it already shrinks them several times over,
# while higher levels cost the agent's host far more CPU for a few percent more. The
# header's mtime is 0 (none): so gzip is one zlib call, where a time costs a crc32 of
# its own, and each call gives up the GIL, which the sink's thread waits to get back.
GZIP_LEVEL = 1
DEFAULT_TAG = "hostcore.{name}"
DEFAULT_BATCH = 1024
_EVENT_TIME = b"\xd7\x00"  # fixext 8, ext type 0
_ENTRY = b"\x92"  # an array of two: time, record


def event_time(timestamp_ns: int) -> bytes:
    """EventTime in msgpack: seconds and nanoseconds since the epoch."""
    return _EVENT_TIME + struct.pack(">II", *divmod(timestamp_ns, 10**9))


def entry(time: bytes, record: bytes) -> bytes:
    """One ``[time, record]`` entry from their msgpack encodings."""
    return _ENTRY + time + record


def message(tag: str, entries: list[bytes], mode: str, option: Mapping[str, Any]) -> bytes:
    """A Forward (``forward``), PackedForward (``packed``) or CompressedPackedForward
    (``compressed``, which adds ``compressed: gzip`` to the option) message of encoded entries."""
    packer = msgpack.Packer()
    head: bytes = packer.pack_array_header(3) + packer.pack(tag)
    body: bytes
    if mode == "forward":
        body = packer.pack_array_header(len(entries)) + b"".join(entries)
    elif mode == "compressed":
        body = packer.pack(gzip.compress(b"".join(entries), GZIP_LEVEL, mtime=0))
        option = {**option, "compressed": "gzip"}
    else:
        body = packer.pack(b"".join(entries))  # bin: the entries one after another
    return head + body + bytes(packer.pack(option))


def chunk_id() -> str:
    """A unique chunk id: 128 random bits, base64, as the specification suggests."""
    return base64.b64encode(os.urandom(16)).decode()


class ForwardSink:
    def __init__(self, connection: Connection, tag: str, mode: str, ack: bool, batch: int) -> None:
        self._connection = connection
        self._tag = tag
        self._mode = mode
        self._ack = ack
        self._batch_size = batch
        self._batches: dict[str, list[bytes]] = {}
        self._batched = 0  # events in the batches

    @property
    def held(self) -> int:
        """Events not delivered yet: in batches, being sent, or (ack=true) not acknowledged."""
        return self._batched + self._connection.held_events

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        parts = event_parts(event)
        tag = self._tag.format(name=parts.name, host=parts.host)
        self._batches.setdefault(tag, []).append(entry(event_time(event["timestamp"]), packed))
        self._batched += 1
        if self._batched >= self._batch_size:
            self._send_batches()

    def flush(self) -> None:
        """Send every batch, and wait until the receiver has acknowledged all (ack=true)."""
        self._send_batches()
        self._connection.settle()

    def _send_batches(self) -> None:
        while self._batches:
            tag, entries = next(iter(self._batches.items()))
            option: dict[str, Any] = {"size": len(entries)}
            ack = chunk_id() if self._ack else None
            if ack is not None:
                option["chunk"] = ack
            data = message(tag, entries, self._mode, option)
            del self._batches[tag]  # held by the connection from here on
            self._batched -= len(entries)
            self._connection.send(data, ack, len(entries))

    def close(self) -> None:
        self._connection.close()  # the final flush sent every batch, and had it acknowledged


class _Settings(NamedTuple):
    address: Address
    max_backoff_s: float
    tag: str
    mode: str
    ack: bool
    batch: int
    tls: Tls | None
    auth: ForwardAuth | None


def _settings(options: Mapping[str, str]) -> _Settings:
    if "address" not in options:
        raise OptionError("needs address=HOST:PORT (or unix:PATH), e.g. 127.0.0.1:24224")
    mode = options.get("mode", MODES[0])
    if mode not in MODES:
        raise OptionError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    batch = whole_number_option(options, "batch", DEFAULT_BATCH)
    tag = options.get("tag", DEFAULT_TAG)
    try:
        tag.format(name="", host="")
    except (KeyError, IndexError, ValueError) as error:
        raise OptionError(f"tag {tag!r}: only {{name}} and {{host}} may be filled in") from error
    max_backoff = number_option(options, "max_backoff_s", DEFAULT_MAX_BACKOFF_S, MIN_BACKOFF_S)
    ack = flag_option(options, "ack")
    address, tls = address_and_tls(options)
    return _Settings(address, max_backoff, tag, mode, ack, batch, tls, forward_auth(options))


def _open(options: Mapping[str, str]) -> Sink:
    settings = _settings(options)
    handshake = settings.auth.handshake if settings.auth is not None else None
    connection = Connection(
        settings.address, settings.max_backoff_s, "forward", settings.tls, handshake
    )
    connection.start()
    return ForwardSink(connection, settings.tag, settings.mode, settings.ack, settings.batch)


def forward_auth(options: Mapping[str, str]) -> ForwardAuth | None:
    """The handshake the options ask for: a shared key, and optionally a user."""
    user = options.get("username", "")
    if "shared_key" not in options:
        if user or "password" in options:
            raise OptionError(
                "username and password need shared_key: users are checked in its handshake"
            )
        return None
    if bool(user) != ("password" in options):
        raise OptionError("username and password go together")
    return ForwardAuth(
        read_secret("shared_key", options["shared_key"]),
        options.get("self_hostname") or socket.gethostname(),
        user,
        read_secret("password", options["password"]) if user else "",
    )


@hookimpl
def hostcore_register_sinks(register: Callable[[SinkSpec], None]) -> None:
    register(
        SinkSpec(
            name="forward",
            open=_open,
            check=_settings,
            options={
                "address": "the receiver: HOST:PORT, [IPv6]:PORT or unix:PATH",
                "tag": f"Fluent tag, {{name}} and {{host}} filled in (default {DEFAULT_TAG})",
                "mode": "packed (PackedForward, the default), compressed (the same, gzipped: "
                "CompressedPackedForward) or forward (Forward)",
                "ack": "true: chunk ids, each message sent again until acknowledged",
                "batch": f"events per message at most (default {DEFAULT_BATCH})",
                "max_backoff_s": "longest wait between reconnects, in seconds "
                f"(default {DEFAULT_MAX_BACKOFF_S})",
                "shared_key": f"the receiver's shared key, {SECRET_FORMS}: proven in a handshake",
                "username": "a user the receiver knows (with shared_key)",
                "password": f"that user's password, {SECRET_FORMS}",
                "self_hostname": "the name this host gives in the handshake (default: its own)",
                **TLS_OPTIONS,
            },
            description="Fluent Forward protocol (Fluent Bit, Fluentd, Vector), TLS",
        )
    )
