"""The ``stdout`` sink: one JSON object per line, the event map as it is."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from hostcore import hookimpl
from hostcore.sinks.base import Sink, SinkSpec


class StdoutSink:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        self._stream.write(json.dumps(event, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self.flush()


def _open(options: Mapping[str, str]) -> Sink:
    return StdoutSink(sys.stdout)


@hookimpl
def hostcore_register_sinks(register: Callable[[SinkSpec], None]) -> None:
    register(SinkSpec(name="stdout", open=_open, description="JSON lines on standard output"))
