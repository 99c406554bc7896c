"""A sink for tests that run a Pipeline in the test's process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack


class ListSink:
    """A sink that keeps the event maps it is given, for tests that run a Pipeline."""

    def __init__(self) -> None:
        self.events: list[Mapping[str, Any]] = []

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        self.events.append(msgpack.unpackb(packed, raw=False))
        assert self.events[-1] == event  # what was packed is the map, nothing more

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
