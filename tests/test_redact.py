"""Credentials are masked in log lines and error messages (hostcore/redact.py)."""

from __future__ import annotations

import pytest

from hostcore.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nats://alice:s3cret@127.0.0.1:4222", "nats://***@127.0.0.1:4222"),
        ("url=nats://t0ken@h:1,stream=x", "url=nats://***@h:1,stream=x"),
        ("password=hunter2 next", "password=*** next"),
        ("(sent token=abc123)", "(sent token=***)"),
        ('{"api_key": "zzz"}', '{"api_key": "***"}'),
        ("Authorization: Bearer-less secret: x1", "Authorization: Bearer-less secret: ***"),
    ],
)
def test_credentials_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    ["nats://127.0.0.1:4222", "http://[::1]:80/x?a=b", "sink 'file' failed", "user@host"],
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact(text) == text
