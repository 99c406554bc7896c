"""The ``forward`` sink: Fluent Forward protocol v1, as Fluent Bit, Fluentd and Vector receive it.

Events are sent in batches, one message per tag: Forward mode
``[tag, [[time, record], ...], option]`` or PackedForward mode ``[tag, bin, option]``
where ``bin`` is the same entries one after another. ``time`` is an EventTime (msgpack
ext type 0: seconds and nanoseconds, 32 bits each, big-endian); ``record`` is the event
map, the core's own msgpack bytes, never packed again. With ``ack=true`` each message
carries a ``chunk`` id and is sent again until the receiver answers ``{"ack": chunk}``.
"""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Callable, Mapping
from typing import Any

import msgpack

from hostcore import hookimpl
from hostcore.sinks.base import Sink, SinkOptionError, SinkSpec, name_and_host
from hostcore.sinks.options import flag
from hostcore.sinks.socket import DEFAULT_MAX_BACKOFF_S, Connection, parse_address, seconds

MODES = ("packed", "forward")
DEFAULT_TAG = "hostcore.{name}"
DEFAULT_BATCH = 256
_EVENT_TIME = b"\xd7\x00"  # fixext 8, ext type 0
_ENTRY = b"\x92"  # an array of two: time, record


def event_time(timestamp_ns: int) -> bytes:
    """EventTime in msgpack: seconds and nanoseconds since the epoch."""
    return _EVENT_TIME + struct.pack(">II", *divmod(timestamp_ns, 10**9))


def entry(time: bytes, record: bytes) -> bytes:
    """One ``[time, record]`` entry from their msgpack encodings."""
    return _ENTRY + time + record


def message(tag: str, entries: list[bytes], mode: str, option: Mapping[str, Any]) -> bytes:
    """A Forward (``forward``) or PackedForward (``packed``) message of encoded entries."""
    packer = msgpack.Packer()
    head: bytes = packer.pack_array_header(3) + packer.pack(tag)
    body: bytes
    if mode == "packed":
        body = packer.pack(b"".join(entries))  # bin: the entries one after another
    else:
        body = packer.pack_array_header(len(entries)) + b"".join(entries)
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
        self.held = 0  # events in batches not yet sent (acknowledged, with ack=true)

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        name, host = name_and_host(event)
        tag = self._tag.format(name=name, host=host)
        self._batches.setdefault(tag, []).append(entry(event_time(event["timestamp"]), packed))
        self.held += 1
        if self.held >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        for tag, entries in list(self._batches.items()):
            option: dict[str, Any] = {"size": len(entries)}
            ack = chunk_id() if self._ack else None
            if ack is not None:
                option["chunk"] = ack
            self._connection.send(message(tag, entries, self._mode, option), ack)
            del self._batches[tag]
            self.held -= len(entries)

    def close(self) -> None:
        self._connection.close()


def _open(options: Mapping[str, str]) -> Sink:
    if "address" not in options:
        raise SinkOptionError("needs address=HOST:PORT (or unix:PATH), e.g. 127.0.0.1:24224")
    mode = options.get("mode", MODES[0])
    if mode not in MODES:
        raise SinkOptionError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    batch = options.get("batch", str(DEFAULT_BATCH))
    if not batch.isdigit() or int(batch) < 1:
        raise SinkOptionError(f"batch must be a whole number >= 1, got {batch!r}")
    tag = options.get("tag", DEFAULT_TAG)
    try:
        tag.format(name="", host="")
    except (KeyError, IndexError, ValueError) as error:
        raise SinkOptionError(
            f"tag {tag!r}: only {{name}} and {{host}} may be filled in"
        ) from error
    max_backoff = seconds("max_backoff_s", options.get("max_backoff_s", str(DEFAULT_MAX_BACKOFF_S)))
    connection = Connection(parse_address(options["address"]), max_backoff, "forward")
    return ForwardSink(connection, tag, mode, flag("ack", options.get("ack", "false")), int(batch))


@hookimpl
def hostcore_register_sinks(register: Callable[[SinkSpec], None]) -> None:
    register(
        SinkSpec(
            name="forward",
            open=_open,
            options={
                "address": "the receiver: HOST:PORT, [IPv6]:PORT or unix:PATH",
                "tag": f"Fluent tag, {{name}} and {{host}} filled in (default {DEFAULT_TAG})",
                "mode": "packed (PackedForward, the default) or forward (Forward)",
                "ack": "true: chunk ids, each message sent again until acknowledged",
                "batch": f"events per message at most (default {DEFAULT_BATCH})",
                "max_backoff_s": "longest wait between reconnects, in seconds "
                f"(default {DEFAULT_MAX_BACKOFF_S})",
            },
            description="Fluent Forward protocol (Fluent Bit, Fluentd, Vector)",
        )
    )
