"""The ``stdout`` sink: one JSON object per line, the event map as it is."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

from hostcore import hookimpl
from hostcore.sinks.base import Sink, SinkClosed, SinkSpec


def json_line(event: Mapping[str, Any]) -> str:
    """The event map as ``run`` prints it (and ``tail`` too): compact JSON and a newline."""
    return json.dumps(event, separators=(",", ":")) + "\n"


class StdoutSink:
    """Writes to ``stream``; a reader that went away (``| head``) closes the sink."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        with self._closed_on_broken_pipe():
            self._stream.write(json_line(event))

    def flush(self) -> None:
        with self._closed_on_broken_pipe():
            self._stream.flush()

    def close(self) -> None:
        """Standard output stays open: the process may still print its totals there."""

    @contextlib.contextmanager
    def _closed_on_broken_pipe(self) -> Iterator[None]:
        try:
            yield
        except BrokenPipeError as error:
            # Point the descriptor at /dev/null so that nothing, the interpreter's own
            # flush at exit included, writes to the dead pipe again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
            raise SinkClosed("the reader of standard output went away") from error


def _open(options: Mapping[str, str]) -> Sink:
    return StdoutSink(sys.stdout)


@hookimpl
def hostcore_register_sinks(register: Callable[[SinkSpec], None]) -> None:
    register(SinkSpec(name="stdout", open=_open, description="JSON lines on standard output"))
