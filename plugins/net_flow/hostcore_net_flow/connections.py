"""What the flow events share: socket keys and the fields every flow event starts with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hostcore import Direction, Packet
from hostcore_net_flow.community_id import community_id

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
    """The eight fields every flow event starts with; ``src`` is the initiator."""
    return {
        "conn_direction": direction,
        "src": initiator[0],
        "dst": responder[0],
        "src_port": initiator[1],
        "dst_port": responder[1],
        "src_dns": names(initiator[0], cgroup_id, timestamp_ns),
        "dst_dns": names(responder[0], cgroup_id, timestamp_ns),
        "community_id": community_id(initiator[0], responder[0], initiator[1], responder[1]),
    }
