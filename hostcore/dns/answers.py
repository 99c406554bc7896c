"""Feed DNS answer packets into the store: framing, parsing, loopback copies, counters."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import NamedTuple

from hostcore.dns.message import Answer, Chain, DnsError, chains, parse
from hostcore.dns.store import NameStore
from hostcore.packet import Direction, Packet

IPPROTO_UDP = 17
# Answers that left a local socket are remembered until their copy arrives at
# the asking socket (on loopback or a veth: within microseconds), for at most
# this long and this many (with their payloads: 4096 x the answer size).
EGRESS_COPY_WINDOW_NS = 10**9
EGRESS_COPIES = 4096
# TCP connections whose next DNS message starts in a later segment.
TCP_STREAMS = 4096

_Flow = tuple[str, str, int, int]
_CopyKey = tuple[str, str, int, int, bytes]


class _Sent(NamedTuple):
    cgroup_id: int
    answered_ns: int
    chains: list[Chain]


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
        self._egress_copies: OrderedDict[_CopyKey, _Sent] = OrderedDict()
        self._next_message_seq: OrderedDict[_Flow, int] = OrderedDict()

    def add(self, packet: Packet) -> None:
        copy_key = (packet.src, packet.dst, packet.src_port, packet.dst_port, packet.payload)
        if packet.direction == Direction.INGRESS:
            sent = self._egress_copies.pop(copy_key, None)
            if sent is not None:
                self._count("dns.loopback_copies", 1)
                self._store.rescope(sent.chains, sent.cgroup_id, packet.cgroup_id, sent.answered_ns)
                return
        self._count("dns.answers", 1)
        found: list[Chain] = []
        if packet.protocol == IPPROTO_UDP and len(packet.payload) < packet.payload_size:
            self._count("dns.truncated", 1)
        else:
            for message in self._messages(packet):
                answer = self._parse(message)
                if answer is not None:
                    found += chains(answer)
        self._count("dns.chains", len(found))
        self._store.add(found, packet.cgroup_id, packet.timestamp_ns)
        if packet.direction == Direction.EGRESS:
            self._remember(copy_key, _Sent(packet.cgroup_id, packet.timestamp_ns, found))

    def _remember(self, key: _CopyKey, sent: _Sent) -> None:
        copies = self._egress_copies
        copies[key] = sent
        while copies:
            oldest = next(iter(copies.values()))
            if len(copies) <= EGRESS_COPIES and (
                sent.answered_ns - oldest.answered_ns < EGRESS_COPY_WINDOW_NS
            ):
                break
            copies.popitem(last=False)

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
        """UDP carries one message; TCP carries messages behind 2-byte length prefixes.

        Messages are not reassembled: one that continues in a later segment is
        counted once (``dns.tcp_segmented``, or ``dns.truncated`` if the probe
        cut the segment), and the segments holding the rest are skipped.
        """
        payload = packet.payload
        if packet.protocol == IPPROTO_UDP:
            yield payload
            return
        flow = (packet.src, packet.dst, packet.src_port, packet.dst_port)
        offset = 0
        next_seq = self._next_message_seq.pop(flow, None)
        if next_seq is not None:
            offset = (next_seq - packet.seq) & 0xFFFFFFFF
            if offset >= 1 << 31:
                offset = 0  # the boundary is behind this segment: start afresh
            elif offset >= packet.payload_size:
                self._expect(flow, next_seq)  # all of this segment continues the message
                return
        while offset < len(payload):
            end = offset + 2 + int.from_bytes(payload[offset : offset + 2], "big")
            if offset + 2 > len(payload) or end > len(payload):
                self._count(
                    "dns.truncated" if end <= packet.payload_size else "dns.tcp_segmented", 1
                )
                if offset + 2 <= len(payload):
                    self._expect(flow, (packet.seq + end) & 0xFFFFFFFF)
                return
            yield payload[offset + 2 : end]
            offset = end

    def _expect(self, flow: _Flow, seq: int) -> None:
        self._next_message_seq[flow] = seq
        if len(self._next_message_seq) > TCP_STREAMS:
            self._next_message_seq.popitem(last=False)
