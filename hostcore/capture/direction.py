"""Which way a captured packet crossed the host, for captures that do not say.

Live, the probe knows ingress from egress. A capture file may record it (pcapng
packet flags, Linux cooked packet types); otherwise the addresses decide: a
packet from a local address to a remote one left the host, one from a remote
address to a local one arrived. When both ends are local, or neither, it
counts as arriving. Local means one of the ``--local-net`` networks, or by
default the private, loopback and link-local ranges.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from hostcore.packet import Direction

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
        self._local: dict[str, bool] = {}

    def is_local(self, address: str) -> bool:
        local = self._local.get(address)
        if local is None:
            if len(self._local) >= _CACHE_LIMIT:
                self._local.clear()
            parsed = ipaddress.ip_address(address)
            local = self._local[address] = any(parsed in network for network in self.networks)
        return local

    def direction(self, src: str, dst: str) -> Direction:
        if self.is_local(src) and not self.is_local(dst):
            return Direction.EGRESS
        return Direction.INGRESS
