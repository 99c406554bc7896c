"""The ``file`` sink: a msgpack stream, one map per event, readable by msgpack.Unpacker."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog

from hostcore import hookimpl
from hostcore.sinks.base import Sink, SinkOptionError, SinkSpec
from hostcore.sinks.output import DEFAULT_MODE, ReopenWatch, open_append, parse_mode

log = structlog.get_logger()


class FileSink:
    def __init__(self, path: str, mode: int) -> None:
        self._path = path
        self._mode = mode
        self._reopen = ReopenWatch()
        # Append: restarting the agent never truncates what an earlier run captured.
        self._file = open_append(path, mode)

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        if self._reopen.due():  # SIGHUP: the file may have been rotated away
            self._file.close()
            self._file = open_append(self._path, self._mode)
            log.info("output file reopened", path=self._path)
        self._file.write(packed)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _open(options: Mapping[str, str]) -> Sink:
    path = options.get("path")
    if not path:
        raise SinkOptionError("needs path=FILE, e.g. --sink file:path=events.msgpack")
    try:
        mode = parse_mode(options.get("mode", f"{DEFAULT_MODE:o}"))
    except ValueError as error:
        raise SinkOptionError(
            f"mode must be octal, e.g. mode=0640, got {options['mode']!r}"
        ) from error
    try:
        return FileSink(path, mode)
    except OSError as error:
        raise SinkOptionError(f"cannot open {path!r}: {error.strerror}") from error


@hookimpl
def hostcore_register_sinks(register: Callable[[SinkSpec], None]) -> None:
    register(
        SinkSpec(
            name="file",
            open=_open,
            options={
                "path": "file to append the msgpack stream to (created if missing)",
                "mode": f"permissions of a file it creates, octal (default {DEFAULT_MODE:04o})",
            },
            description="msgpack stream appended to a file; reopened on SIGHUP",
        )
    )
