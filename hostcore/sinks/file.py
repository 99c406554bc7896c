"""The ``file`` sink: a msgpack stream, one map per event, readable by msgpack.Unpacker."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hostcore import hookimpl
from hostcore.sinks.base import Sink, SinkOptionError, SinkSpec


class FileSink:
    def __init__(self, path: str) -> None:
        # Append: restarting the agent never truncates what an earlier run captured.
        self._file = open(path, "ab")  # noqa: SIM115 - closed by close()

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
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
        return FileSink(path)
    except OSError as error:
        raise SinkOptionError(f"cannot open {path!r}: {error.strerror}") from error


@hookimpl
def hostcore_register_sinks(register: Callable[[SinkSpec], None]) -> None:
    register(
        SinkSpec(
            name="file",
            open=_open,
            options={"path": "file to append the msgpack stream to (created if missing)"},
            description="msgpack stream appended to a file",
        )
    )
