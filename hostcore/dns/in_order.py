"""The DNS store as event handlers read it: in stream order, one hook call per batch.

A batch reaches each handler whole, in one call. When DNS answers arrive in the
middle of it, the names each packet would have found when it came are looked up
first, in stream order, answer by answer; a handler's lookup for that packet
(its address, cgroup and timestamp) then gets those names, not the names of
answers that came after it. (Two packets of one batch alike in all three, to the
nanosecond, with an answer for that address between them, both get the first's.)
"""

from __future__ import annotations

from hostcore.dns.store import NameStore
from hostcore.packet import Packet

_Lookup = tuple[str, int, int]  # address, cgroup id, timestamp


class NamesInOrder:
    """``DnsNames`` for handlers: the store, with the lookups a batch's answers would
    change answered as of each packet's place in the stream."""

    def __init__(self, store: NameStore) -> None:
        self._store = store
        self._as_of: dict[_Lookup, list[str]] = {}

    def names(self, address: str, cgroup_id: int, timestamp_ns: int) -> list[str]:
        """As :meth:`NameStore.names`; the list may be shared: treat it as read-only."""
        found = self._as_of.get((address, cgroup_id, timestamp_ns)) if self._as_of else None
        return self._store.names(address, cgroup_id, timestamp_ns) if found is None else found

    def remember(self, packet: Packet) -> None:
        """Look up ``packet``'s two addresses now, before any later answer is stored."""
        for address in (packet.src, packet.dst):
            lookup = (address, packet.cgroup_id, packet.timestamp_ns)
            if lookup not in self._as_of:  # packets alike to the nanosecond: the first's names
                self._as_of[lookup] = self._store.names(*lookup)

    def forget(self) -> None:
        """The batch is handled: from here on every lookup is the store's own."""
        self._as_of.clear()
