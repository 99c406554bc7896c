"""Maps with a size limit, for state that must not grow however long a run lasts."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class BoundedMap(Generic[Key, Value]):
    """Values by key, oldest put first, at most ``capacity`` of them.

    Putting a key again moves it to the end, as new. When full, a new key drops
    the oldest entry, counted in ``evictions`` (state lost early: a caller that
    must say so counts them as its losses). With ``window_ns``, an entry put that
    long ago or longer is forgotten as time, the ``now_ns`` of each ``put``,
    moves on (and, given it, the ``now_ns`` of a ``get``): not an eviction, the
    entry has served its time.
    """

    def __init__(self, capacity: int, window_ns: int | None = None) -> None:
        self._capacity = capacity
        self._window_ns = window_ns
        self._entries: dict[Key, tuple[int, Value]] = {}
        self.evictions = 0

    def put(self, key: Key, value: Value, now_ns: int) -> None:
        entries = self._entries
        if self._window_ns is not None and entries:
            self.expire(now_ns - self._window_ns)
        if entries.pop(key, None) is None and len(entries) >= self._capacity:
            del entries[next(iter(entries))]
            self.evictions += 1
        entries[key] = (now_ns, value)

    def get(self, key: Key, now_ns: int | None = None) -> Value | None:
        """The value of ``key``; given ``now_ns``, entries past the window are forgotten first."""
        if now_ns is not None and self._window_ns is not None:
            self.expire(now_ns - self._window_ns)
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def pop(self, key: Key) -> Value | None:
        entry = self._entries.pop(key, None)
        return None if entry is None else entry[1]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[Key]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def expire(self, deadline_ns: int) -> list[tuple[Key, Value]]:
        """Remove and return the entries put at or before ``deadline_ns``, oldest first.

        Put times are taken in order, so the walk stops at the first newer entry
        (packets a few nanoseconds apart on two CPUs may be out of order by that much).
        """
        entries = self._entries
        expired = []
        while entries:
            key = next(iter(entries))
            put_ns, value = entries[key]
            if put_ns > deadline_ns:
                break
            del entries[key]
            expired.append((key, value))
        return expired


class BoundedCache(dict[Key, Value]):
    """A cache of values computed from their keys: a dict (``get`` is the dict's own, as
    fast) that starts again empty once it holds ``limit`` keys, counted in ``resets``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.resets = 0

    def put(self, key: Key, value: Value) -> Value:
        """Cache ``value`` under ``key``; returns it."""
        if len(self) >= self.limit:
            self.clear()
            self.resets += 1
        self[key] = value
        return value
