"""The bounded maps every long-lived table is built on: capacity, time windows, counts."""

from __future__ import annotations

from hostcore import BoundedCache, BoundedMap, BoundedSet


def test_capacity_drops_the_oldest_and_counts_it() -> None:
    table: BoundedMap[str, int] = BoundedMap(capacity=2)
    table.put("a", 1, now_ns=0)
    table.put("b", 2, now_ns=1)
    table.put("a", 3, now_ns=2)  # put again: now the newest
    table.put("c", 4, now_ns=3)  # full: "b", the oldest, goes
    assert table.keys() == ["a", "c"]
    assert (table.get("a"), table.get("b"), table.evictions) == (3, None, 1)


def test_a_window_forgets_by_time_without_counting_evictions() -> None:
    seen: BoundedMap[str, None] = BoundedMap(capacity=1000, window_ns=10)
    seen.put("a", None, now_ns=0)
    assert "a" in seen and seen.get("a", now_ns=9) is None and "a" in seen
    seen.put("b", None, now_ns=10)  # "a" was put 10 ns ago: its time is up
    assert seen.keys() == ["b"]
    assert seen.get("b", now_ns=25) is None and "b" not in seen  # a get moves time on too
    assert seen.evictions == 0


def test_expire_returns_what_it_removes_oldest_first() -> None:
    pending: BoundedMap[str, int] = BoundedMap(capacity=10)
    for n, key in enumerate("abc"):
        pending.put(key, n, now_ns=n * 10)
    assert pending.expire(deadline_ns=10) == [("a", 0), ("b", 1)]
    assert (len(pending), pending.pop("c"), len(pending)) == (1, 2, 0)


def test_a_cache_starts_again_when_full() -> None:
    cache: BoundedCache[int, str] = BoundedCache(limit=2)
    assert cache.put(1, "one") == "one"
    cache.put(2, "two")
    cache.put(3, "three")  # full: the cache starts again from this one
    assert dict(cache) == {3: "three"}
    assert cache.get(3) == "three" and cache.get(1) is None


def test_a_set_keeps_keys_a_generation_and_counts_what_capacity_forgets() -> None:
    keys = BoundedSet(capacity=1000, window_ns=10)
    assert keys.add("a", now_ns=0)
    assert not keys.add("a", now_ns=9)
    assert keys.add("b", now_ns=10)  # a new generation begins; "a" is still remembered
    assert not keys.add("a", now_ns=15)
    assert keys.add("c", now_ns=20)  # another: the generation holding "a" is forgotten
    assert keys.add("a", now_ns=21)
    assert keys.evictions == 0  # expiry by time is not pressure
    small = BoundedSet(capacity=4, window_ns=10**9)  # generations of 2
    assert all(small.add(n, now_ns=n) for n in range(10))
    assert not small.add(9, now_ns=10) and not small.add(8, now_ns=10)
    assert small.evictions == 6  # rotations at the 3rd, 5th, 7th, 9th key: 0+2+2+2
