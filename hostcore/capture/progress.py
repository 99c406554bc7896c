"""A one-line progress report on a terminal: packets, rate, percent of the file."""

from __future__ import annotations

import time
from typing import TextIO

UPDATE_INTERVAL_NS = 200_000_000


class Progress:
    """Redraws one status line at most five times a second; ``done`` ends it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._started = time.monotonic_ns()
        self._next = 0
        self._shown = False

    def update(self, name: str, packets: int, position: int, size: int) -> None:
        now = time.monotonic_ns()
        if now < self._next:
            return
        self._next = now + UPDATE_INTERVAL_NS
        rate = packets * 10**9 / max(now - self._started, 1)
        percent = 100 * position / size if size else 100.0
        self._stream.write(f"\r{name}: {packets:,} packets, {rate:,.0f}/s, {percent:5.1f}%\x1b[K")
        self._stream.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
