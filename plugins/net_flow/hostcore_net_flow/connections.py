"""Connection state shared by the flow events: identities, tables, the initiator's fields."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from hostcore import Direction, Packet

Value = TypeVar("Value")

# One local socket's connection: (local ip, local port, remote ip, remote port).
# On loopback both sockets of a connection share the 4-tuple; the local end keeps them apart.
SocketKey = tuple[str, int, str, int]

Names = Callable[[str, int, int], list[str]]  # DnsNames.names


def socket_key(packet: Packet) -> SocketKey:
    """The key of the local socket ``packet`` passed through."""
    if packet.direction is Direction.EGRESS:
        return (packet.src, packet.src_port, packet.dst, packet.dst_port)
    return (packet.dst, packet.dst_port, packet.src, packet.src_port)


def flow_fields(
    direction: str,
    initiator: tuple[str, int],
    responder: tuple[str, int],
    names: Names,
    cgroup_id: int,
    timestamp_ns: int,
) -> dict[str, Any]:
    """The seven fields every flow event starts with; ``src`` is the initiator."""
    return {
        "conn_direction": direction,
        "src": initiator[0],
        "dst": responder[0],
        "src_port": initiator[1],
        "dst_port": responder[1],
        "src_dns": names(initiator[0], cgroup_id, timestamp_ns),
        "dst_dns": names(responder[0], cgroup_id, timestamp_ns),
    }


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


class FlowTable(Generic[Value]):
    """Values by key in the order they were put, at most ``capacity`` of them.

    When full, putting a new key drops the oldest entry and counts it in
    ``evictions``. Putting a key again moves it to the end, as new.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: dict[Hashable, tuple[int, Value]] = {}
        self.evictions = 0

    def put(self, key: Hashable, value: Value, now_ns: int) -> None:
        entries = self._entries
        if entries.pop(key, None) is None and len(entries) >= self._capacity:
            del entries[next(iter(entries))]
            self.evictions += 1
        entries[key] = (now_ns, value)

    def pop(self, key: Hashable) -> Value | None:
        entry = self._entries.pop(key, None)
        return None if entry is None else entry[1]

    def get(self, key: Hashable) -> Value | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def expire(self, deadline_ns: int) -> list[tuple[Hashable, Value]]:
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
