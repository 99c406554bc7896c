"""The forward sink: the Fluent Forward v1 wire format, checked against the specification's
examples byte by byte, against fluent-logger's encoder, and end to end with acks, over TLS
and with the shared-key handshake, against the receiver of tests/fluent_receiver.py."""

from __future__ import annotations

import gzip
import socket
import ssl
import struct
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from certs import Authority
from fluent.sender import EventTime, FluentSender
from fluent_receiver import FluentReceiver, decode

from hostcore.plugins import PluginError
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


def test_compressed_packed_forward_mode_carries_them_gzipped() -> None:
    entries = [
        entry(msgpack.packb(time), msgpack.packb({"message": text})) for time, text in SPEC_EVENTS
    ]
    tag, body, option = msgpack.unpackb(message("tag.name", entries, "compressed", {"size": 3}))
    assert (tag, option) == ("tag.name", {"size": 3, "compressed": "gzip"})
    assert gzip.decompress(body) == b"".join(spec_entries())


@pytest.mark.parametrize("ns", [0, 1441588984_000000001, 1795830000_123456789, 2**32 * 10**9 - 1])
def test_event_time_is_what_fluent_logger_sends(ns: int) -> None:
    seconds, nanoseconds = divmod(ns, 10**9)
    layout = b"\xd7\x00" + struct.pack(">II", seconds, nanoseconds)  # the specification's
    assert event_time(ns) == layout == msgpack.packb(EventTime.from_unix_nano(ns))


@pytest.mark.parametrize("mode", ["packed", "forward", "compressed"])
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


def test_two_messages_go_out_unacknowledged_and_count_as_undelivered(
    sink_host: MakeHost,
) -> None:
    """The next message is sent before the first is acknowledged, not after; a receiver
    that never answers leaves the two in flight, and the queue behind them, undelivered."""
    silent = socket.create_server(("127.0.0.1", 0))
    options = {"address": f"127.0.0.1:{silent.getsockname()[1]}", "ack": "true", "batch": "64"}
    host = sink_host({"forward": options}, drain_timeout_s=0.5)
    connection, _ = silent.accept()
    for data in synthetic_events(300):
        host.emit(data)
    assert host.close()["sink_undelivered.forward"] == 300
    connection.settimeout(1)
    unpacker = msgpack.Unpacker(raw=False)
    messages: list[list[Any]] = []
    while len(messages) < 2:  # what the sink sent before it waited for an ack
        unpacker.feed(connection.recv(65536))
        messages += unpacker
    connection.setblocking(False)
    with pytest.raises(BlockingIOError):
        connection.recv(1)
    assert [len(decode(m)[1]) for m in messages] == [64, 64]
    connection.close()
    silent.close()


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


def secret_file(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    return f"file:{path}"


def receiver_tls(authority: Authority) -> ssl.SSLContext:
    issued = authority.issue("receiver")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert_file, issued.key_file)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(authority.cert_file)
    return context


def test_over_mutual_tls_with_a_shared_key_and_a_user_events_arrive_acked_once(
    sink_host: MakeHost, authority: Authority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = FluentReceiver(
        refuse_first=True,  # a dropped connection: handshake again, then send it again
        tls=receiver_tls(authority),
        shared_key="fleet key",
        users={"node-a": "node-a password"},
    )
    client = authority.issue("node-a")
    monkeypatch.setenv("FORWARD_PASSWORD", "node-a password")
    options = {
        "address": receiver.address,
        "ack": "true",
        "mode": "compressed",
        "batch": "50",
        "max_backoff_s": "0.1",
        "tls": "true",
        "ca_file": str(authority.cert_file),
        "cert_file": str(client.cert_file),
        "key_file": str(client.key_file),
        "shared_key": secret_file(tmp_path, "shared.key", "fleet key"),
        "username": "node-a",
        "password": "env:FORWARD_PASSWORD",
    }
    host = sink_host({"forward": options})
    for data in synthetic_events(300):
        host.emit(data)
    totals = host.close()
    assert not [name for name in totals if name.startswith("sink_")]
    assert Counter(r["data"]["seq"] for _, _, r in receiver.events) == Counter(range(300))
    assert not receiver.refuse_first and receiver.refusals == []


@pytest.mark.parametrize(
    ("receiver_options", "sink_options", "message"),
    [
        ({"shared_key": "k2"}, {}, "the receiver refused the handshake: shared key mismatch"),
        (
            {"users": {"node-a": "right"}},
            {"username": "node-a", "password": "wrong"},
            "refused the handshake: username/password mismatch",
        ),
        ({"users": {"node-a": "right"}}, {}, "the receiver asks for a user: set username"),
        ({"impostor": True}, {}, "PONG does not prove that it has the shared key"),
        ({"shared_key": None}, {}, "the receiver sent no HELO within 2 s"),
    ],
)
def test_a_refused_handshake_stops_the_run_at_its_start_saying_why(
    tmp_path: Path,
    receiver_options: dict[str, object],
    sink_options: dict[str, str],
    message: str,
) -> None:
    receiver = FluentReceiver(**{"shared_key": "k1", **receiver_options})  # type: ignore[arg-type]
    options = {"address": receiver.address, "shared_key": secret_file(tmp_path, "key", "k1")}
    if "password" in sink_options:
        sink_options |= {"password": secret_file(tmp_path, "password", sink_options["password"])}
    with pytest.raises(PluginError, match=message):
        SinkHost({"forward": {**options, **sink_options}})
    assert receiver.events == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"shared_key": "k1"}, "shared_key must say where the secret is, file:PATH or env:NAME"),
        ({"shared_key": "env:HOSTCORE_TEST_UNSET"}, "HOSTCORE_TEST_UNSET is not set"),
        ({"shared_key": "file:/nonexistent"}, "shared_key: cannot read /nonexistent"),
        ({"username": "a", "password": "env:X"}, "username and password need shared_key"),
        ({"shared_key": "env:PATH", "username": "a"}, "username and password go together"),
        ({"mode": "gzip"}, "mode must be one of packed, forward, compressed"),
    ],
)
def test_bad_auth_options_say_what_to_fix(options: dict[str, str], message: str) -> None:
    with pytest.raises(PluginError, match=message) as refused:
        SinkHost({"forward": {"address": "127.0.0.1:1", **options}})
    assert "k1" not in str(refused.value)  # a secret given inline is never repeated
