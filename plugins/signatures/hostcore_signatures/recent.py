"""A map that forgets: bounded in time and in memory, as signature state must be."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """Values by key, least recently touched first.

    A key untouched for ``window_ns`` is forgotten; beyond ``capacity`` keys the
    least recently touched goes early, and is counted in ``evictions``. Time is
    the events' own timestamps, so state expires as the stream moves on.
    """

    def __init__(self, capacity: int, window_ns: int) -> None:
        self._capacity = capacity
        self._window_ns = window_ns
        self._items: OrderedDict[K, tuple[int, V]] = OrderedDict()
        self.evictions = 0

    def get(self, key: K, now_ns: int) -> V | None:
        """The value of ``key`` if it was touched within the window (expires older keys)."""
        self._expire(now_ns)
        item = self._items.get(key)
        return None if item is None else item[1]

    def put(self, key: K, value: V, now_ns: int) -> None:
        """Set ``key`` and mark it touched at ``now_ns``."""
        self._expire(now_ns)
        self._items.pop(key, None)
        self._items[key] = (now_ns, value)
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)
            self.evictions += 1

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[K]:
        return list(self._items)

    def _expire(self, now_ns: int) -> None:
        items = self._items
        while items:
            touched_ns, _ = next(iter(items.values()))
            if now_ns - touched_ns < self._window_ns:
                return
            items.popitem(last=False)
