"""The ``stdout`` sink: one JSON object per line, the event map as it is."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from hostcore import hookimpl
from hostcore.sinks.base import AnySink, SinkClosed, SinkSpec


def json_line(event: Mapping[str, Any]) -> str:
    """An event map as compact JSON and a newline, as ``tail`` prints events from a bus
    (``run`` prints the same from pieces it keeps: pipeline/json_lines.py)."""
    return json.dumps(event, separators=(",", ":")) + "\n"


class StdoutSink:
    """Writes each event's JSON line (the core makes it: ``encoding``) to ``stream``; a
    reader that went away (``| head``) closes the sink."""

    encoding = "json"

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, line: str, event: Mapping[str, Any]) -> None:
        try:
            self._stream.write(line)
        except BrokenPipeError as error:
            raise self._gone() from error

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError as error:
            raise self._gone() from error

    def close(self) -> None:
        """Standard output stays open: the process may still print its totals there."""

    def _gone(self) -> SinkClosed:
        # Point the descriptor at /dev/null so that nothing, the interpreter's own
        # flush at exit included, writes to the dead pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)
        return SinkClosed("the reader of standard output went away")


def _open(options: Mapping[str, str]) -> AnySink:
    return StdoutSink(sys.stdout)


@hookimpl
def hostcore_register_sinks(register: Callable[[SinkSpec], None]) -> None:
    register(SinkSpec(name="stdout", open=_open, description="JSON lines on standard output"))
