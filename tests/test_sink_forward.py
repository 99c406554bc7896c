"""The forward sink: the Fluent Forward v1 wire format, checked against the specification's
examples byte by byte, against fluent-logger's encoder, and end to end with acks."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from fluent.sender import EventTime, FluentSender

from hostcore.sinks.forward import entry, event_time, message
from hostcore.testing import KIT_EVENT_NAME, SinkHost, synthetic_events

MakeHost = Callable[..., SinkHost]
# The specification's Forward mode example: three events of tag.name, integer times.
SPEC_EVENTS = [(1441588984, "foo"), (1441588985, "bar"), (1441588986, "baz")]


def fixstr(text: str) -> bytes:
    """msgpack fixstr, written out from the msgpack format rather than by msgpack."""
    return bytes([0xA0 | len(text)]) + text.encode()


def spec_entries() -> list[bytes]:
    return [
        b"\x92" + b"\xce" + struct.pack(">I", time) + b"\x81" + fixstr("message") + fixstr(text)
        for time, text in SPEC_EVENTS
    ]


OPTION = b"\x81" + fixstr("option") + fixstr("optional")


def test_forward_mode_is_the_specification_example_byte_by_byte() -> None:
    entries = [
        entry(msgpack.packb(time), msgpack.packb({"message": text})) for time, text in SPEC_EVENTS
    ]
    expected = b"\x93" + fixstr("tag.name") + b"\x93" + b"".join(spec_entries()) + OPTION
    assert message("tag.name", entries, "forward", {"option": "optional"}) == expected


def test_packed_forward_mode_carries_the_same_entries_as_bin() -> None:
    entries = [
        entry(msgpack.packb(time), msgpack.packb({"message": text})) for time, text in SPEC_EVENTS
    ]
    stream = b"".join(spec_entries())
    expected = b"\x93" + fixstr("tag.name") + b"\xc4" + bytes([len(stream)]) + stream + OPTION
    assert message("tag.name", entries, "packed", {"option": "optional"}) == expected


@pytest.mark.parametrize("ns", [0, 1441588984_000000001, 1795830000_123456789, 2**32 * 10**9 - 1])
def test_event_time_is_what_fluent_logger_sends(ns: int) -> None:
    seconds, nanoseconds = divmod(ns, 10**9)
    layout = b"\xd7\x00" + struct.pack(">II", seconds, nanoseconds)  # the specification's
    assert event_time(ns) == layout == msgpack.packb(EventTime.from_unix_nano(ns))


class FluentReceiver:
    """A Forward protocol receiver on loopback: decodes Message, Forward and PackedForward
    modes, acks chunks, keeps ``(tag, time, record)`` of every message it accepted.

    With ``refuse_first``, it closes the first connection after reading one message
    without acking it, as a receiver that crashed would.

    A check that fails in its thread (a message that breaks the specification) stops it,
    and fails the test when the test reads ``events``.
    """

    def __init__(self, refuse_first: bool = False) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.refuse_first = refuse_first
        self.received: list[tuple[str, Any, dict[str, Any]]] = []
        self.failure: BaseException | None = None
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def events(self) -> list[tuple[str, Any, dict[str, Any]]]:
        if self.failure is not None:
            raise AssertionError("the receiver stopped on a bad message") from self.failure
        return self.received

    def _serve(self) -> None:
        try:
            while True:
                connection, _ = self.listener.accept()
                with connection:
                    self._read(connection)
        except BaseException as failure:  # in this thread, it would fail no test
            self.failure = failure

    def _read(self, connection: socket.socket) -> None:
        unpacker = msgpack.Unpacker(raw=False)
        while chunk := connection.recv(65536):
            unpacker.feed(chunk)
            for received in unpacker:
                if self.refuse_first:
                    self.refuse_first = False
                    return
                tag, entries, option = decode(received)
                self.received.extend((tag, time, record) for time, record in entries)
                if "chunk" in option:
                    connection.sendall(msgpack.packb({"ack": option["chunk"]}))

    def wait_for(self, count: int) -> list[tuple[str, Any, dict[str, Any]]]:
        deadline = time.monotonic() + 60
        while len(self.events) < count:
            assert time.monotonic() < deadline, f"{len(self.events)} events, not {count}"
            time.sleep(0.01)
        return self.events


def decode(received: list[Any]) -> tuple[str, list[list[Any]], dict[str, Any]]:
    """(tag, entries, option) of a message in any mode, as the specification lays them out."""
    tag, second = received[0], received[1]
    if isinstance(second, bytes):  # PackedForward: the entries one after another
        stream = msgpack.Unpacker(raw=False)
        stream.feed(second)
        entries = list(stream)
    elif isinstance(second, list):  # Forward
        entries = second
    else:  # Message: [tag, time, record, option?]
        return tag, [[second, received[2]]], received[3] if len(received) > 3 else {}
    option = received[2] if len(received) > 2 else {}
    assert option.get("size", len(entries)) == len(entries)
    return tag, entries, option


@pytest.mark.parametrize("mode", ["packed", "forward"])
def test_events_arrive_acked_once_and_decode_as_fluent_loggers_do(
    sink_host: MakeHost, mode: str
) -> None:
    receiver = FluentReceiver(refuse_first=True)
    options = {"address": f"127.0.0.1:{receiver.port}", "mode": mode, "ack": "true"}
    host = sink_host({"forward": {**options, "batch": "64", "max_backoff_s": "0.1"}})
    for data in synthetic_events(300):
        host.emit(data)
    totals = host.close()  # every message acked by then
    assert not [name for name in totals if name.startswith("sink_")]
    events = receiver.events
    assert Counter(record["data"]["seq"] for _, _, record in events) == Counter(range(300))
    assert not receiver.refuse_first  # it dropped a message unacked: that one was sent again
    assert {tag for tag, _, _ in events} == {f"hostcore.{KIT_EVENT_NAME}"}
    # fluent-logger, an independent encoder, sends the same records (in Message mode):
    # the receiver decodes them to the same tags, EventTimes and records.
    oracle = FluentReceiver()
    sender = FluentSender("hostcore", port=oracle.port, nanosecond_precision=True)
    for _, _, record in events:
        at = EventTime.from_unix_nano(record["timestamp"])
        assert sender.emit_with_time(KIT_EVENT_NAME, at, record), sender.last_error
    sender.close()
    assert oracle.wait_for(len(events)) == events


def test_tracee_format_events_are_tagged_by_their_name(sink_host: MakeHost) -> None:
    """--format tracee renders the map sinks get; the tag still comes from the event's name."""
    receiver = FluentReceiver()
    options = {"address": f"127.0.0.1:{receiver.port}", "tag": "{host}.{name}"}
    host = sink_host({"forward": options}, output_format="tracee")
    for data in synthetic_events(20):
        host.emit(data)
    totals = host.close()
    assert not [name for name in totals if name.startswith("sink_")], totals
    events = receiver.wait_for(20)
    assert {tag for tag, _, _ in events} == {f"kit-host.{KIT_EVENT_NAME}"}
    assert {record["eventName"] for _, _, record in events} == {KIT_EVENT_NAME}
