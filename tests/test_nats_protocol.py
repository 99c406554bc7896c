"""The nats plugin's wire format and login options, without a server (the server tests are
tests/test_sink_nats.py and tests/test_sink_nats_fleet.py)."""

from __future__ import annotations

import base64
from pathlib import Path

import nkeys
import pytest
from hostcore_nats import protocol
from hostcore_nats.auth import credentials_from
from hostcore_nats.protocol import Control, Msg, ProtocolError, Reader
from hostcore_nats.server import server_from
from nats_jwt import Key, Operator

from hostcore import OptionError

STREAM = (
    b'INFO {"server_id":"x","headers":true,"max_payload":1048576,"nonce":"abc"}\r\n'
    b"MSG _INBOX.a.1 1  30\r\n"  # the server writes an empty reply field as a second space
    b'{"stream":"HOSTCORE", "seq":1}\r\n'
    b"HMSG _INBOX.a.2 1 $JS.ACK.x 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
    b"PING\r\n"
    b"-ERR 'Permissions Violation for Publish to \"hostcore.b.x\"'\r\n"
)
FRAMES = [
    Control(
        "INFO", info={"server_id": "x", "headers": True, "max_payload": 1048576, "nonce": "abc"}
    ),
    Msg(b"_INBOX.a.1", 1, b"", b"", b'{"stream":"HOSTCORE", "seq":1}'),
    Msg(b"_INBOX.a.2", 1, b"$JS.ACK.x", b"NATS/1.0 503\r\n\r\n", b""),
    Control("PING"),
    Control("-ERR", text='Permissions Violation for Publish to "hostcore.b.x"'),
]


# With numbered replies to _INBOX.a.: the plain ack is a (number, payload) reply, the
# status message stays a message (it has a header).
NUMBERED = [FRAMES[0], (1, b'{"stream":"HOSTCORE", "seq":1}'), *FRAMES[2:]]


@pytest.mark.parametrize(("numbered", "frames"), [(b"", FRAMES), (b"_INBOX.a.", NUMBERED)])
def test_the_reader_gives_each_frame_however_the_bytes_are_cut(
    numbered: bytes, frames: list[protocol.Frame]
) -> None:
    assert Reader(numbered).feed(STREAM) == frames
    for cut in range(1, len(STREAM)):
        reader = Reader(numbered)
        assert reader.feed(STREAM[:cut]) + reader.feed(STREAM[cut:]) == frames, cut


def test_only_a_plain_message_to_a_number_under_the_prefix_is_a_reply() -> None:
    stream = (
        b"MSG _INBOX.a.7 1 2\r\nok\r\n"
        b"MSG _INBOX.a.7 1 _INBOX.r 2\r\nok\r\n"  # with a reply subject
        b"MSG _INBOX.a.request.1f 1 2\r\nok\r\n"
        b"MSG _INBOX.ab.7 1 2\r\nok\r\n"
    )
    assert Reader(b"_INBOX.a.").feed(stream) == [
        (7, b"ok"),
        Msg(b"_INBOX.a.7", 1, b"_INBOX.r", b"", b"ok"),
        Msg(b"_INBOX.a.request.1f", 1, b"", b"", b"ok"),
        Msg(b"_INBOX.ab.7", 1, b"", b"", b"ok"),
    ]


def test_a_status_and_header_fields_are_read_from_the_header_block() -> None:
    message = Msg(
        b"s", 2, b"", b"NATS/1.0 100 Idle Heartbeat\r\nNats-Consumer-Stalled: r\r\n\r\n", b""
    )
    assert (message.status, message.header("Nats-Consumer-Stalled"), message.header("X")) == (
        "100",
        "r",
        "",
    )
    assert FRAMES[1].status == ""  # type: ignore[union-attr]


def test_what_is_not_nats_is_an_error() -> None:
    with pytest.raises(ProtocolError, match="not the NATS protocol"):
        Reader().feed(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(ProtocolError, match="not the NATS protocol"):
        Reader().feed(b"\x16\x03\x01" + b"x" * 5000)  # a TLS server: never a line


def test_published_messages_are_laid_out_as_the_protocol_says() -> None:
    head = b"NATS/1.0\r\nNats-Msg-Id: run-7\r\n\r\n"  # 32 bytes
    sent = protocol.hpublish(b"hostcore.a.b", b"_INBOX.x.7", head, b"data")
    assert sent == b"HPUB hostcore.a.b _INBOX.x.7 32 36\r\n" + head + b"data\r\n"
    assert protocol.publish("s", b"", "r") == b"PUB s r 0\r\n\r\n"


def test_an_nkey_signs_the_nonce_and_sends_only_its_public_key(tmp_path: Path) -> None:
    user = Key(nkeys.PREFIX_BYTE_USER)
    seed = tmp_path / "user.nk"
    seed.write_text(user.seed.decode() + "\n")
    fields = credentials_from({"nkey": str(seed)}, None, None).connect_fields("nonce-1")
    assert fields["nkey"] == user.public and user.seed.decode() not in str(fields)
    signature = base64.urlsafe_b64decode(fields["sig"] + "==")
    assert nkeys.from_seed(user.seed).verify(b"nonce-1", signature)


def test_a_credentials_file_gives_its_jwt_and_signs_with_its_seed(tmp_path: Path) -> None:
    creds = Operator().creds(tmp_path / "a.creds", "a")
    fields = credentials_from({"creds": str(creds)}, None, None).connect_fields("n")
    assert fields["jwt"].startswith("eyJ") and set(fields) == {"jwt", "sig"}


@pytest.mark.parametrize(
    ("options", "url", "message"),
    [
        (
            {"token": "env:T", "user": "a"},
            "nats://h",
            "choose one way to log in, not token and user",
        ),
        ({"token": "env:T"}, "nats://u:p@h", "not token and a user in the URL"),
        ({"password": "env:P"}, "nats://h", "password needs user"),
        ({"user": "a"}, "nats://h", "user needs password"),
        ({"token": "s3cret"}, "nats://h", "token must say where the secret is"),
        ({"nkey": "/nonexistent"}, "nats://h", "nkey: cannot read /nonexistent"),
        ({}, "http://h:1", "expected nats://HOST:PORT or tls://HOST:PORT"),
        ({}, "nats://h:99999", "Port out of range"),
        ({"ca_file": "/x"}, "nats://h", "ca_file need tls=true"),
    ],
)
def test_bad_options_say_what_to_fix(options: dict[str, str], url: str, message: str) -> None:
    with pytest.raises(OptionError, match=message) as refused:
        server_from(url, options)
    assert "s3cret" not in str(refused.value)


def test_a_tls_url_turns_tls_on_and_user_info_logs_in(tmp_path: Path) -> None:
    server = server_from("tls://alice:pw@127.0.0.1:4333", {})
    assert server.tls is not None and server.url == "tls://127.0.0.1:4333"
    assert server.credentials.connect_fields(None) == {"user": "alice", "pass": "pw"}
    assert "pw" not in repr(server.credentials)
