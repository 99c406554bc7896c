"""The ``stdout`` sink: one JSON object per line, the event map as it is."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from hostcore import hookimpl
from hostcore.sinks.base import AnySink, EventsLost, SinkClosed, SinkSpec

LINES_PER_WRITE = 256


def json_line(event: Mapping[str, Any]) -> str:
    """An event map as compact JSON and a newline, as ``tail`` prints events from a bus
    (``run`` prints the same from pieces it keeps: pipeline/json_lines.py)."""
    return json.dumps(event, separators=(",", ":")) + "\n"


class StdoutSink:
    """Writes each event's JSON line (the core makes it: ``encoding``) to ``stream``; a
    reader that went away (``| head``) closes the sink.

    Lines are written LINES_PER_WRITE at a time, and at every flush (one write per line
    cost the sink's thread about a microsecond each, py-spy under load), straight to the
    stream's file descriptor where it has one.
    """

    encoding = "json"

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._fd = _descriptor(stream)
        self._lines: list[str] = []

    @property
    def held(self) -> int:
        """Lines taken and not yet written to the stream (undelivered if it goes away)."""
        return len(self._lines)

    def write(self, line: str, event: Mapping[str, Any]) -> None:
        self._lines.append(line)
        if len(self._lines) >= LINES_PER_WRITE:
            self.flush()

    def flush(self) -> None:
        """Write and flush the held lines: an error then names exactly the lines it lost."""
        if not self._lines:
            return
        text = "".join(self._lines)
        try:
            if self._fd is None:
                self._stream.write(text)
                self._stream.flush()
            else:  # past the stream's buffer, which would keep what failed and send it later
                _write_all(self._fd, text.encode())  # JSON lines: ASCII
        except BrokenPipeError as error:
            raise self._gone() from error  # what is held is counted undelivered
        except OSError as error:  # a full disk, say: these lines are lost, later ones may not be
            lost = len(self._lines)
            self._lines.clear()
            raise EventsLost(lost, f"cannot write to standard output: {error}") from error
        self._lines.clear()

    def close(self) -> None:
        """Standard output stays open: the process may still print its totals there."""

    def _gone(self) -> SinkClosed:
        # Point the descriptor at /dev/null so that nothing, the interpreter's own
        # flush at exit included, writes to the dead pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)
        return SinkClosed("the reader of standard output went away")


def _descriptor(stream: TextIO) -> int | None:
    """The file descriptor under ``stream``, with what it buffered flushed; None if it has none."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None
    stream.flush()
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view, written = memoryview(data), 0
    while written < len(data):
        written += os.write(fd, view[written:])


def _open(options: Mapping[str, str]) -> AnySink:
    return StdoutSink(sys.stdout)


@hookimpl
def hostcore_register_sinks(register: Callable[[SinkSpec], None]) -> None:
    register(SinkSpec(name="stdout", open=_open, description="JSON lines on standard output"))
