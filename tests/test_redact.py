"""Credentials are masked in log lines and error messages (hostcore/redact.py)."""

from __future__ import annotations

import os

import nkeys
import pytest

from hostcore.redact import redact

SEED = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiJBQkMifQ.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nats://alice:s3cret@127.0.0.1:4222", "nats://***@127.0.0.1:4222"),
        ("url=nats://t0ken@h:1,stream=x", "url=nats://***@h:1,stream=x"),
        ("password=hunter2 next", "password=*** next"),
        ("(sent token=abc123)", "(sent token=***)"),
        ('{"api_key": "zzz"}', '{"api_key": "***"}'),
        ("Authorization: Bearer-less secret: x1", "Authorization: Bearer-less secret: ***"),
        ("shared_key=fleet-key,tag=x", "shared_key=***,tag=x"),
        (
            'CONNECT {"user":"node-1","pass":"hunter2","sig":"c2ln"}',
            'CONNECT {"user":"node-1","pass":"***","sig":"***"}',
        ),
        (f"-----BEGIN USER NKEY SEED-----\n{SEED}\n", "-----BEGIN USER NKEY SEED-----\n***\n"),
        (f"bad seed {SEED}: no", "bad seed ***: no"),
        (f"jwt {JWT} refused", "jwt *** refused"),
    ],
)
def test_credentials_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "nats://127.0.0.1:4222",
        "http://[::1]:80/x?a=b",
        "sink 'file' failed",
        "user@host",
        "best of 5 passes: 53,451 records/s",
        "user node-1 may not publish to hostcore.node-2.x",
        "signature failed",
    ],
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact(text) == text
