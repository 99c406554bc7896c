"""A sink for tests that run a Pipeline in the test's process."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import msgpack


class ListSink:
    """A sink that keeps what it is given, for tests that run a Pipeline.

    It checks nothing in ``write``: that runs in the sink's thread, where the queue
    counts a failed check as a sink error and the test goes on to pass. ``events``
    checks, in the test's thread, that each packed event unpacks to the map it came
    with, as the map was when the sink got it.
    """

    def __init__(self) -> None:
        self.written: list[tuple[bytes, Mapping[str, Any]]] = []

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        self.written.append((packed, copy.deepcopy(event)))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def events(self) -> list[Mapping[str, Any]]:
        """The events written so far, unpacked from what the sink was given."""
        events = []
        for packed, event in list(self.written):
            unpacked = msgpack.unpackb(packed, raw=False)
            assert unpacked == event  # what was packed is the map, nothing more
            events.append(unpacked)
        return events
