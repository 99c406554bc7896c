"""Feed DNS answer packets into the store: framing, parsing, loopback copies, counters."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator

from hostcore.dns.message import Answer, DnsError, chains, parse
from hostcore.dns.store import ChainKey, NameStore
from hostcore.packet import Direction, Packet

IPPROTO_UDP = 17
# Answers that left a local socket, remembered until their copy arrives at the
# asking socket (on loopback or a veth, at once); these many at most.
EGRESS_COPIES = 4096

_CopyKey = tuple[str, str, int, int, bytes]


class DnsAnswers:
    """Parses every DNS answer packet once, and stores its chains in the right scope.

    An answer between two local sockets passes the probe twice: leaving the
    resolver (egress) and arriving at the client (ingress). The first copy is
    parsed and stored; the second only moves its chains to the cgroup of the
    socket that asked, which is the scope the store uses.
    """

    def __init__(self, store: NameStore, count: Callable[[str, int], None]) -> None:
        self._store = store
        self._count = count
        self._egress_copies: OrderedDict[_CopyKey, list[ChainKey]] = OrderedDict()

    def add(self, packet: Packet) -> None:
        copy_key = (packet.src, packet.dst, packet.src_port, packet.dst_port, packet.payload)
        if packet.direction == Direction.INGRESS:
            stored = self._egress_copies.pop(copy_key, None)
            if stored is not None:
                self._count("dns.loopback_copies", 1)
                self._store.rescope(stored, packet.cgroup_id, packet.timestamp_ns)
                return
        self._count("dns.answers", 1)
        keys: list[ChainKey] = []
        if len(packet.payload) < packet.payload_size:
            self._count("dns.truncated", 1)
        else:
            for message in self._messages(packet):
                answer = self._parse(message)
                if answer is not None:
                    found = chains(answer)
                    self._count("dns.chains", len(found))
                    keys += self._store.add(found, packet.cgroup_id, packet.timestamp_ns)
        if packet.direction == Direction.EGRESS:
            self._egress_copies[copy_key] = keys
            if len(self._egress_copies) > EGRESS_COPIES:
                self._egress_copies.popitem(last=False)

    def _parse(self, message: bytes) -> Answer | None:
        try:
            result = parse(message)
        except DnsError as error:
            self._count(f"dns.malformed.{error.reason}", 1)
            return None
        if isinstance(result, str):
            self._count(f"dns.ignored.{result}", 1)
            return None
        self._count("dns.parsed", 1)
        return result

    def _messages(self, packet: Packet) -> Iterator[bytes]:
        """UDP carries one message; TCP carries messages behind 2-byte length prefixes."""
        payload = packet.payload
        if packet.protocol == IPPROTO_UDP:
            yield payload
            return
        offset = 0
        while offset < len(payload):
            length = int.from_bytes(payload[offset : offset + 2], "big")
            end = offset + 2 + length
            if offset + 2 > len(payload) or end > len(payload):
                # Continued in a later segment (or the middle of one): not reassembled.
                self._count("dns.tcp_segmented", 1)
                return
            yield payload[offset + 2 : end]
            offset = end
