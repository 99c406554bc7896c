"""Subjects and the stream: ``hostcore.<host>.<event name>`` in one JetStream stream."""

from __future__ import annotations

import re

PREFIX = "hostcore"
DEFAULT_STREAM = "HOSTCORE"
DUPLICATE_WINDOW_S = 120.0  # JetStream's default: a re-sent message id within it is dropped

# Dots separate tokens, * and > are wildcards, whitespace ends a subject: none may
# appear inside a token.
_NOT_IN_TOKEN = re.compile(r"[.*>\s]")


def token(text: str) -> str:
    """``text`` as one subject token: subject syntax replaced by ``_``; never empty."""
    return _NOT_IN_TOKEN.sub("_", text) or "_"


def subject(host: str, event_name: str) -> str:
    return f"{PREFIX}.{token(host)}.{token(event_name)}"


def filter_subject(hosts: frozenset[str], events: frozenset[str]) -> str:
    """The narrowest one-subject filter for a query (one host or event, or a wildcard)."""
    host = token(next(iter(hosts))) if len(hosts) == 1 else "*"
    event = token(next(iter(events))) if len(events) == 1 else "*"
    return f"{PREFIX}.{host}.{event}"
