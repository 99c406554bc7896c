"""The net_flow_tcp_begin rules: trigger, direction, src = initiator, one event per identity."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from hostcore_net_flow import begin
from packets import ACK, SYN, ipv4, tcp
from sample_connection import OUTGOING

from hostcore import EventContext
from hostcore.decoder import Decoder
from hostcore.packet import Direction, Packet

decode = Decoder().decode  # one decoder, its address cache, per test module


def syn_ack(
    direction: Direction,
    server: str,
    server_port: int,
    client: str,
    client_port: int,
    client_isn: int = 1000,
    connect_ns: int = 0,
) -> Packet:
    raw = ipv4(server, client, tcp(server_port, client_port, SYN | ACK, seq=5, ack=client_isn + 1))
    return decode(raw, 42, direction, connect_ns=connect_ns)


def run(packets: list[Packet]) -> tuple[list[Mapping[str, Any]], Counter[str]]:
    counts: Counter[str] = Counter()
    emitted: list[Mapping[str, Any]] = []
    handler = begin.TcpBegin(
        EventContext(
            count=lambda name, n: counts.update({name: n}),
            emit=lambda ts, data, source=None: emitted.append(data),
        )
    )
    handler.hostcore_packets(packets)
    return emitted, counts


def test_syn_ack_arriving_means_this_host_connected_out() -> None:
    [event], _ = run([syn_ack(Direction.INGRESS, "203.0.113.5", 443, "192.0.2.10", 40000)])
    assert event == {**OUTGOING, "handshake_ns": None}  # no connect() seen
    assert list(event) == [field.name for field in begin.SPEC.fields]  # declared == emitted


def test_handshake_is_from_connect_to_the_syn_ack_of_an_outgoing_connection() -> None:
    outgoing = syn_ack(Direction.INGRESS, "203.0.113.5", 443, "192.0.2.10", 40000, connect_ns=30)
    incoming = syn_ack(Direction.EGRESS, "192.0.2.10", 22, "198.51.100.7", 51111, connect_ns=30)
    events, _ = run([outgoing, incoming])
    assert [event["handshake_ns"] for event in events] == [42 - 30, None]


def test_syn_ack_leaving_means_a_peer_connected_in() -> None:
    [event], _ = run([syn_ack(Direction.EGRESS, "192.0.2.10", 22, "198.51.100.7", 51111)])
    assert (event["conn_direction"], event["src"], event["src_port"]) == (
        "incoming",
        "198.51.100.7",
        51111,
    )
    assert (event["dst"], event["dst_port"]) == ("192.0.2.10", 22)


def test_retransmitted_syn_ack_gives_one_event() -> None:
    packet = syn_ack(Direction.INGRESS, "203.0.113.5", 443, "192.0.2.10", 40000)
    events, counts = run([packet, packet, packet])
    assert len(events) == 1
    assert counts["net_flow_tcp_begin.duplicate_syn_acks"] == 2


def test_reused_four_tuple_with_new_isn_is_a_new_connection() -> None:
    first = syn_ack(Direction.INGRESS, "203.0.113.5", 443, "192.0.2.10", 40000, client_isn=1)
    second = syn_ack(Direction.INGRESS, "203.0.113.5", 443, "192.0.2.10", 40000, client_isn=2)
    events, _ = run([first, second])
    assert len(events) == 2


def test_loopback_gives_one_event_per_socket() -> None:
    out = syn_ack(Direction.EGRESS, "127.0.0.1", 80, "127.0.0.1", 40000)
    back = syn_ack(Direction.INGRESS, "127.0.0.1", 80, "127.0.0.1", 40000)
    events, _ = run([out, back])
    assert sorted(e["conn_direction"] for e in events) == ["incoming", "outgoing"]


def test_table_is_bounded_and_evictions_counted(monkeypatch: Any) -> None:
    monkeypatch.setattr(begin, "RECENT_CONNECTIONS", 4)  # generations of 2
    packets = [
        syn_ack(Direction.INGRESS, "203.0.113.5", 443, "192.0.2.10", 40000 + i) for i in range(10)
    ]
    events, counts = run(packets + packets[-2:])
    assert len(events) == 10  # the last two are still remembered: no second event
    # Rotations forced by capacity at the 3rd, 5th, 7th and 9th key forgot 0+2+2+2 keys.
    assert counts["net_flow_tcp_begin.identities_forgotten"] == 6
