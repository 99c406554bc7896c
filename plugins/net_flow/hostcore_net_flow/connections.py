"""Connection identities seen recently: bounded in time and in memory."""

from __future__ import annotations

from collections.abc import Hashable


class RecentKeys:
    """Remembers keys for at least one generation, in two sets that rotate.

    A generation ends once ``window_ns`` has passed since it began or once it
    holds ``capacity // 2`` keys; the generation before it is then forgotten.
    Keys forgotten because the capacity forced an early rotation are counted in
    ``evictions``: a duplicate of one of them would no longer be recognised.
    """

    def __init__(self, capacity: int, window_ns: int) -> None:
        self._generation_size = max(1, capacity // 2)
        self._window_ns = window_ns
        self._current: set[Hashable] = set()
        self._previous: set[Hashable] = set()
        self._started_ns: int | None = None
        self.evictions = 0

    def add(self, key: Hashable, now_ns: int) -> bool:
        """Record ``key`` seen at ``now_ns``; False if it was already remembered."""
        if key in self._current or key in self._previous:
            return False
        if self._started_ns is None:
            self._started_ns = now_ns
        elif now_ns - self._started_ns >= self._window_ns:
            self._rotate(now_ns)
        elif len(self._current) >= self._generation_size:
            self.evictions += len(self._previous)
            self._rotate(now_ns)
        self._current.add(key)
        return True

    def _rotate(self, now_ns: int) -> None:
        self._previous, self._current = self._current, set()
        self._started_ns = now_ns
