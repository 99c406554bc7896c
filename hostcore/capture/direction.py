"""Which way a captured packet crossed the host, for captures that do not say.

Live, the probe knows ingress from egress. A capture file may record it (pcapng
packet flags, Linux cooked packet types); otherwise the addresses decide (see
Directions). Local means one of the ``--local-net`` networks, or by default
the private, carrier-grade NAT, loopback and link-local ranges.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from hostcore.bounded import BoundedCache, BoundedMap
from hostcore.decoder import IPPROTO_TCP
from hostcore.packet import Direction, Packet, PacketKind

DEFAULT_LOCAL_NETS = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",
    "169.254.0.0/16",
    "fc00::/7",  # unique local
    "fe80::/10",
    "::1/128",
)
_CACHE_LIMIT = 65536

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """CIDR texts as networks; ValueError names the bad one."""
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as error:
            raise ValueError(f"--local-net {text!r} is not a network: {error}") from error
    return tuple(networks)


class LocalNets:
    """Tells a packet's direction from its addresses; answers are cached per address."""

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks = tuple(networks) or parse_networks(DEFAULT_LOCAL_NETS)
        # As integers: a mask and a compare cost far less than ipaddress per new address.
        self._ranges = {
            family: [
                (int(net.network_address), int(net.netmask))
                for net in self.networks
                if net.version == version
            ]
            for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6))
        }
        self._local: BoundedCache[str, bool] = BoundedCache(_CACHE_LIMIT)

    def is_local(self, address: str) -> bool:
        local = self._local.get(address)
        if local is None:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            value = int.from_bytes(socket.inet_pton(family, address))
            local = self._local.put(
                address, any(value & mask == network for network, mask in self._ranges[family])
            )
        return local


class Directions:
    """A packet's direction from its addresses, or, when they cannot tell, its connection.

    One end local and the other not: leaving from the local one. Both local or
    neither: the capture is taken to be the initiator's, so a TCP packet from
    the connection's initiator left and one from its responder arrived. The
    initiator is the SYN's sender or the SYN+ACK's receiver; for a connection
    whose handshake the capture lacks, the end with the higher port. Any other
    packet (UDP) counts as arriving.
    """

    def __init__(self, local: LocalNets) -> None:
        self._local = local
        # The oldest go first when full: a connection forgotten falls back to a guess.
        self._initiators: BoundedMap[tuple[str, int, str, int], tuple[str, int]] = BoundedMap(
            _CACHE_LIMIT
        )

    def of(self, packet: Packet) -> Direction:
        src_local, dst_local = self._local.is_local(packet.src), self._local.is_local(packet.dst)
        if src_local != dst_local:
            return Direction.EGRESS if src_local else Direction.INGRESS
        if packet.protocol != IPPROTO_TCP:
            return Direction.INGRESS
        source, destination = (packet.src, packet.src_port), (packet.dst, packet.dst_port)
        key = (*source, *destination) if source < destination else (*destination, *source)
        if packet.kind is PacketKind.TCP_SYN:
            self._remember(key, source)
        elif packet.kind is PacketKind.TCP_SYN_ACK:
            self._remember(key, destination)
        initiator = self._initiators.get(key)
        if initiator is None:  # no handshake seen: clients mostly use the higher port
            initiator = source if packet.src_port > packet.dst_port else destination
        return Direction.EGRESS if source == initiator else Direction.INGRESS

    def _remember(self, key: tuple[str, int, str, int], initiator: tuple[str, int]) -> None:
        self._initiators.put(key, initiator, 0)
