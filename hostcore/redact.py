"""Keep credentials out of logs and error messages: user info in URLs, secret-named values,
and NATS's nkey seeds and JWTs wherever they appear."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

MASK = "***"
# scheme://user:password@host, scheme://token@host -> scheme://***@host
_URL_USERINFO = re.compile(r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^@\s/]+@")
# password=..., token: ..., "secret": "...", shared_key=... (a sink option, a header, a JSON
# key); "pass" and "sig" only as whole keys (NATS's CONNECT), not inside other words
_SECRET_VALUE = re.compile(
    r"(?P<keep>(?:\b[\w-]*(?:password|passwd|secret|token|api[_-]?key|credentials?"
    r"|shared[_-]?key|seed)[\w-]*|\b(?:pass|sig)\b)"
    r"[\"']?\s*[=:]\s*[\"']?)[^\s,;\"'&)\]}]+",
    re.IGNORECASE,
)
# An nkey seed (S, then the key's role, then 56 base32 characters) or a JWT, named or not.
_BARE_SECRET = re.compile(r"\bS[UAONCP][A-Z2-7]{56}\b|\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")


def redact(text: str) -> str:
    """``text`` with every credential it carries replaced by ``***``."""
    text = _URL_USERINFO.sub(rf"\g<keep>{MASK}@", text)
    text = _BARE_SECRET.sub(MASK, text)
    return _SECRET_VALUE.sub(rf"\g<keep>{MASK}", text)


def redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: every string value of a log line, tracebacks included."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
        elif isinstance(value, list | tuple):
            event[key] = [redact(item) if isinstance(item, str) else item for item in value]
    return event
