"""The ``file`` sink: a msgpack stream, one map per event, readable by msgpack.Unpacker."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from hostcore import hookimpl
from hostcore.options import OptionError
from hostcore.sinks.base import EventsLost, Sink, SinkSpec
from hostcore.sinks.output import DEFAULT_MODE, ReopenWatch, open_append, parse_mode

FLUSH_BYTES = 1 << 16  # a batch's events are written at once, or sooner past this size

log = structlog.get_logger()


class FileSink:
    """Writes whole events only: a write that fails (a full disk) is cut back to the last
    whole event, and the events it carried are counted as lost."""

    def __init__(self, path: str, mode: int) -> None:
        self._path = path
        self._mode = mode
        self._reopen = ReopenWatch()
        # Append: restarting the agent never truncates what an earlier run captured.
        self._file = open_append(path, mode)
        self._buffer = bytearray()
        self.held = 0  # events in the buffer, not yet written

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        self._buffer += packed
        self.held += 1
        if len(self._buffer) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._reopen.due():  # SIGHUP: the file may have been rotated away
            self._file.close()
            self._file = open_append(self._path, self._mode)
            log.info("output file reopened", path=self._path)
        if not self._buffer:
            return
        fd = self._file.fileno()
        whole = os.lseek(fd, 0, os.SEEK_END)
        try:
            written = 0
            while written < len(self._buffer):
                written += os.write(fd, memoryview(self._buffer)[written:])
        except OSError as error:
            os.ftruncate(fd, whole)  # no torn event for readers to trip on
            lost, self.held = self.held, 0
            self._buffer.clear()
            raise EventsLost(lost, f"cannot write {self._path}: {error.strerror}") from error
        self._buffer.clear()
        self.held = 0

    def close(self) -> None:
        self._file.close()  # after the final flush: what it could not write is counted


def _settings(options: Mapping[str, str]) -> tuple[str, int]:
    """The path and the mode of a file it creates."""
    path = options.get("path")
    if not path:
        raise OptionError("needs path=FILE, e.g. --sink file:path=events.msgpack")
    try:
        return path, parse_mode(options.get("mode", f"{DEFAULT_MODE:o}"))
    except ValueError as error:
        raise OptionError(f"mode must be octal, e.g. mode=0640, got {options['mode']!r}") from error


def _open(options: Mapping[str, str]) -> Sink:
    path, mode = _settings(options)
    try:
        return FileSink(path, mode)
    except OSError as error:
        raise OptionError(f"cannot open {path!r}: {error.strerror}") from error


@hookimpl
def hostcore_register_sinks(register: Callable[[SinkSpec], None]) -> None:
    register(
        SinkSpec(
            name="file",
            open=_open,
            check=_settings,
            options={
                "path": "file to append the msgpack stream to (created if missing)",
                "mode": f"permissions of a file it creates, octal (default {DEFAULT_MODE:04o})",
            },
            description="msgpack stream appended to a file; reopened on SIGHUP",
        )
    )
