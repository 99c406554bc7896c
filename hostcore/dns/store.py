"""The DNS store: which names lead to an address, bounded, TTL-aware and scoped by cgroup."""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

from hostcore.bounded import BoundedCache
from hostcore.dns.message import Chain

# Chains kept per address: a lookup sorts them, and an event carries all their names.
CHAINS_PER_ADDRESS = 16

# A chain's identity: (address, cgroup id of the answer's socket, names).
_ChainKey = tuple[str, int, tuple[str, ...]]

# Lookups kept made, by (address, cgroup id); and how long a kept one may skip the
# least-recently-used bookkeeping of its chains (so an address in use is never the
# first to go because its lookups were answered from here).
LOOKUPS_KEPT = 65536
LOOKUP_TOUCH_NS = 10**9


class _Lookup(NamedTuple):
    names: list[str]
    generation: int  # the store's, when made: any change to the store since voids it
    valid_until_ns: int  # the first expiry among its chains
    touched_ns: int  # when its chains were last moved to the end of the LRU order


class _Entry(NamedTuple):
    answered_ns: int
    expires_ns: int


class NameStore:
    """Chains from DNS answers, found by address.

    A chain is valid until its smallest TTL (clamped to ``ttl_floor_s`` and
    ``ttl_ceiling_s``) has passed since its answer; expired chains are never
    returned. At most ``capacity`` chains are kept: beyond it the least
    recently used one goes, and if it was still valid that counts as an
    eviction. With ``by_cgroup`` set, names from answers delivered into the
    asking socket's cgroup come first, then the rest of the host's.
    """

    def __init__(
        self,
        capacity: int,
        ttl_floor_s: int,
        ttl_ceiling_s: int,
        by_cgroup: bool,
        counters: Counter[str],
    ) -> None:
        self._capacity = capacity
        self._ttl_floor_s = ttl_floor_s
        self._ttl_ceiling_s = ttl_ceiling_s
        self._by_cgroup = by_cgroup
        self._counters = counters  # updated in place: lookups run twice per event
        self._entries: OrderedDict[_ChainKey, _Entry] = OrderedDict()
        self._by_address: dict[str, set[_ChainKey]] = {}
        self._generation = 0  # counts changes to the chains
        self._lookups: BoundedCache[tuple[str, int], _Lookup] = BoundedCache(LOOKUPS_KEPT)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, chains: Iterable[Chain], cgroup_id: int, answered_ns: int) -> None:
        """Store the chains of one answer, delivered into ``cgroup_id`` at ``answered_ns``."""
        scope = cgroup_id if self._by_cgroup else 0
        for chain in chains:
            ttl_s = min(max(chain.ttl, self._ttl_floor_s), self._ttl_ceiling_s)
            key = (chain.address, scope, chain.names)
            self._put(key, _Entry(answered_ns, answered_ns + ttl_s * 10**9), answered_ns)

    def rescope(
        self, chains: Iterable[Chain], from_cgroup: int, to_cgroup: int, answered_ns: int
    ) -> None:
        """Move an answer's chains to the cgroup of the socket it was finally delivered to.

        Only chains still from this very answer move: one that a later answer
        refreshed in ``from_cgroup`` belongs to that answer and stays.
        """
        if not self._by_cgroup or from_cgroup == to_cgroup:
            return
        chains = list(chains)
        for chain in chains:
            key = (chain.address, from_cgroup, chain.names)
            entry = self._entries.get(key)
            if entry is not None and entry.answered_ns == answered_ns:
                self._remove(key)
        self.add(chains, to_cgroup, answered_ns)

    def names(self, address: str, cgroup_id: int, timestamp_ns: int) -> list[str]:
        """Names for ``address``: own cgroup's chains first, most recent answer first.

        The list may be shared with other lookups: treat it as read-only. A lookup made
        before is given again while the store is unchanged and none of its chains has
        expired (at most ``LOOKUP_TOUCH_NS`` without touching their LRU order).
        """
        keys = self._by_address.get(address)
        if not keys:
            self._counters["dns.lookups_miss"] += 1
            return []
        kept = self._lookups.get((address, cgroup_id))
        if (
            kept is not None
            and kept.generation == self._generation
            and timestamp_ns < kept.valid_until_ns
            and timestamp_ns - kept.touched_ns < LOOKUP_TOUCH_NS
        ):
            self._counters["dns.lookups_hit"] += 1
            return kept.names
        return self._look_up(keys, address, cgroup_id, timestamp_ns)

    def _look_up(
        self, keys: set[_ChainKey], address: str, cgroup_id: int, timestamp_ns: int
    ) -> list[str]:
        found = []
        valid_until_ns = None
        for key in list(keys):
            entry = self._entries[key]
            if entry.expires_ns <= timestamp_ns:
                self._remove(key)
                continue
            self._entries.move_to_end(key)
            found.append((key[1] == cgroup_id, entry.answered_ns, key[2]))
            if valid_until_ns is None or entry.expires_ns < valid_until_ns:
                valid_until_ns = entry.expires_ns
        if valid_until_ns is None:
            self._counters["dns.lookups_miss"] += 1
            return []
        self._counters["dns.lookups_hit"] += 1
        found.sort(reverse=True)
        names = list(dict.fromkeys(name for _, _, names in found for name in names))
        lookup = _Lookup(names, self._generation, valid_until_ns, timestamp_ns)
        self._lookups.put((address, cgroup_id), lookup)
        return names

    def _put(self, key: _ChainKey, entry: _Entry, now_ns: int) -> None:
        self._generation += 1
        known = self._entries.get(key)
        if known is not None:
            if known.answered_ns > entry.answered_ns:
                return  # a later answer already refreshed it
            self._entries.move_to_end(key)
        else:
            keys = self._by_address.setdefault(key[0], set())
            if len(keys) >= CHAINS_PER_ADDRESS:
                # A shared address (a CDN's, a load balancer's): keep its latest answers.
                oldest = min(keys, key=lambda k: self._entries[k].answered_ns)
                self._evict(oldest, self._entries[oldest], now_ns)
                del self._entries[oldest]
            keys.add(key)
        self._entries[key] = entry
        while len(self._entries) > self._capacity:
            self._evict(*self._entries.popitem(last=False), now_ns)

    def _evict(self, key: _ChainKey, entry: _Entry, now_ns: int) -> None:
        """Forget ``key`` (already out of the LRU order, or about to be); count it if valid."""
        self._forget(key)
        if entry.expires_ns > now_ns:
            self._counters["dns.evictions"] += 1

    def _remove(self, key: _ChainKey) -> None:
        del self._entries[key]
        self._forget(key)

    def _forget(self, key: _ChainKey) -> None:
        self._generation += 1
        keys = self._by_address[key[0]]
        keys.discard(key)
        if not keys:
            del self._by_address[key[0]]
