"""Maps with a size limit, for state that must not grow however long a run lasts."""

from __future__ import annotations

from collections import OrderedDict
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
        # An OrderedDict, not a dict: removing its oldest entries keeps finding the
        # next one O(1) (a dict walks the holes they leave at its front).
        self._entries: OrderedDict[Key, tuple[int, Value]] = OrderedDict()
        self.evictions = 0

    def put(self, key: Key, value: Value, now_ns: int) -> None:
        entries = self._entries
        if self._window_ns is not None and entries:
            deadline_ns = now_ns - self._window_ns
            if next(iter(entries.values()))[0] <= deadline_ns:
                self.expire(deadline_ns)
        if entries.pop(key, None) is None and len(entries) >= self._capacity:
            entries.popitem(last=False)
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
            key, (put_ns, value) = next(iter(entries.items()))
            if put_ns > deadline_ns:
                break
            entries.popitem(last=False)
            expired.append((key, value))
        return expired


class BoundedSet:
    """Keys seen lately, for telling repeats apart: each kept for at least one
    generation, in two sets that rotate (a membership test and an add: the cheapest
    bound there is, for a check made on every packet).

    A generation ends once ``window_ns`` has passed since it began or once it holds
    ``capacity // 2`` keys; the generation before it is then forgotten. Keys forgotten
    because the capacity forced an early rotation are counted in ``evictions``: a
    repeat of one of them would no longer be recognised.
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


class BoundedCache(dict[Key, Value]):
    """A cache of values computed from their keys: a dict (``get`` is the dict's own, as
    fast) that starts again empty once it holds ``limit`` keys (what it held is only
    computed again)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: Key, value: Value) -> Value:
        """Cache ``value`` under ``key``; returns it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
