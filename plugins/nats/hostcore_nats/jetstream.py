"""JetStream's API, as requests on a connection: the stream, consumers, and what acks say."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hostcore_nats.client import Connection
from hostcore_nats.protocol import Msg
from hostcore_nats.subjects import DUPLICATE_WINDOW_S, PREFIX

API = "$JS.API"
NOT_FOUND = 404
NO_RESPONDERS = "503"


class JetStreamError(Exception):
    """An error JetStream answered with: ``code`` is HTTP-like (404, 503...)."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"JetStream: {description} ({code})")
        self.code = code


def answer(reply: Msg) -> dict[str, Any]:
    """A JetStream reply's JSON, or ``JetStreamError`` if it says it failed."""
    if reply.status == NO_RESPONDERS:
        raise JetStreamError(503, "no JetStream answers there (is JetStream on, the stream there?)")
    try:
        body: dict[str, Any] = json.loads(reply.payload)
    except ValueError as not_json:
        raise JetStreamError(500, f"not a JetStream reply: {reply.payload[:80]!r}") from not_json
    failed = body.get("error")
    if isinstance(failed, dict):
        raise JetStreamError(int(failed.get("code", 500)), str(failed.get("description", failed)))
    return body


def call(
    connection: Connection, what: str, request: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    payload = json.dumps(request).encode() if request is not None else b""
    return answer(connection.request(f"{API}.{what}", payload))


def ensure_stream(connection: Connection, stream: str) -> None:
    """Create the stream of ``hostcore.>`` on file storage unless it exists."""
    try:
        call(connection, f"STREAM.INFO.{stream}")
    except JetStreamError as error:
        if error.code != NOT_FOUND:
            raise
        config = {
            "name": stream,
            "subjects": [f"{PREFIX}.>"],
            "storage": "file",
            "retention": "limits",
            "discard": "old",
            "num_replicas": 1,
            "duplicate_window": int(DUPLICATE_WINDOW_S * 10**9),
        }
        call(connection, f"STREAM.CREATE.{stream}", config)
