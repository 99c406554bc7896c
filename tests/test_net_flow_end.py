"""The net_flow_tcp_end rules: first FIN/RST per local socket, closer, kind, begin status."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hostcore_net_flow import end
from packets import ACK, FIN, RST, SYN
from sample_connection import CLIENT, OUTGOING, SERVER, segment

from hostcore import EventContext, OpenSocket, TcpTotals
from hostcore.packet import Direction, Packet


def run(
    packets: Sequence[Packet], sockets: Sequence[OpenSocket] = ()
) -> tuple[list[Mapping[str, Any]], Counter[str]]:
    counts: Counter[str] = Counter()
    emitted: list[Mapping[str, Any]] = []
    handler = end.TcpEnd(
        EventContext(
            count=lambda name, n: counts.update({name: n}),
            emit=lambda ts, data, source=None: emitted.append(data),
        )
    )
    handler.hostcore_preload(sockets)
    for packet in packets:  # one batch each, as a slow trickle of packets comes
        handler.hostcore_packets([packet])
    return emitted, counts


def test_client_side_connection_ended_by_the_server() -> None:
    [event], _ = run(
        [
            segment(Direction.INGRESS, SERVER, CLIENT, SYN | ACK, ns=1_000),
            segment(Direction.INGRESS, SERVER, CLIENT, FIN | ACK, ns=51_000),
            segment(Direction.EGRESS, CLIENT, SERVER, FIN | ACK, ns=52_000),
        ]
    )
    assert event == {
        **OUTGOING,
        "closed_by": "remote",
        "closed_with": "fin",
        "begin": "seen",
        "duration_ns": 50_000,
        **end.NO_TOTALS,  # the packets carry none
    }
    assert list(event) == [field.name for field in end.SPEC.fields]  # declared == emitted


def test_the_closed_sockets_totals_are_the_ends() -> None:
    totals = TcpTotals(120, 4_000, 7, 9, 1, 250, 180)
    [event], _ = run(
        [
            segment(Direction.INGRESS, SERVER, CLIENT, SYN | ACK, ns=1_000),
            segment(Direction.EGRESS, CLIENT, SERVER, FIN | ACK, ns=9_000)._replace(totals=totals),
        ]
    )
    assert {name: event[name] for name in end.NO_TOTALS} == {
        "bytes_sent": 120,
        "bytes_received": 4_000,
        "segments_sent": 7,
        "segments_received": 9,
        "retransmits": 1,
        "srtt_us": 250,
        "min_rtt_us": 180,
    }
    assert (event["closed_by"], event["duration_ns"]) == ("local", 8_000)


def test_server_side_connection_reset_by_this_host() -> None:
    [event], _ = run(
        [
            segment(Direction.EGRESS, SERVER, CLIENT, SYN | ACK, ns=10),
            segment(Direction.EGRESS, SERVER, CLIENT, RST | ACK, seq=99, ns=30),
        ]
    )
    assert (event["conn_direction"], event["src"], event["src_port"]) == (
        "incoming",
        "192.0.2.10",
        40000,
    )
    assert (event["closed_by"], event["closed_with"], event["duration_ns"]) == ("local", "rst", 20)


def test_loopback_gives_one_end_per_socket_and_ignores_later_fins() -> None:
    client, server = ("127.0.0.1", 40000), ("127.0.0.1", 8080)
    events, _ = run(
        [
            segment(Direction.EGRESS, server, client, SYN | ACK),
            segment(Direction.INGRESS, server, client, SYN | ACK),
            segment(Direction.EGRESS, client, server, FIN | ACK),  # the client closes
            segment(Direction.INGRESS, client, server, FIN | ACK),
            segment(Direction.EGRESS, server, client, FIN | ACK),  # then the server
            segment(Direction.INGRESS, server, client, FIN | ACK),
            segment(Direction.INGRESS, server, client, FIN | ACK),  # a retransmission
        ]
    )
    assert Counter((e["conn_direction"], e["closed_by"]) for e in events) == Counter(
        {("outgoing", "local"): 1, ("incoming", "remote"): 1}
    )


def test_end_without_a_seen_begin_is_flagged_with_the_local_end_as_src() -> None:
    [event], _ = run([segment(Direction.INGRESS, SERVER, CLIENT, FIN | ACK)])
    assert (event["begin"], event["conn_direction"], event["duration_ns"]) == (
        "missed",
        "unknown",
        None,
    )
    assert (event["src"], event["src_port"], event["dst"], event["dst_port"]) == (*CLIENT, *SERVER)


def test_rst_refusing_a_syn_is_no_end() -> None:
    """RFC 793: the RST answering a SYN has sequence number 0 and acknowledges the SYN."""
    refused = segment(Direction.INGRESS, SERVER, CLIENT, RST | ACK, seq=0)
    events, _ = run([refused])
    assert events == []


@pytest.mark.parametrize("incoming", [True, False])
def test_connections_open_at_start_end_as_pre_existing(incoming: bool) -> None:
    sock = OpenSocket(*CLIENT, *SERVER, incoming=incoming, socket_cookie=5)
    [event], _ = run([segment(Direction.EGRESS, CLIENT, SERVER, FIN | ACK)], [sock])
    assert event["begin"] == "pre_existing" and event["duration_ns"] is None
    if incoming:  # the local end is the server
        assert (event["conn_direction"], event["src"], event["src_port"]) == (
            "incoming",
            *SERVER,
        )
    else:
        assert (event["conn_direction"], event["src"], event["src_port"]) == (
            "outgoing",
            *CLIENT,
        )
    assert event["closed_by"] == "local"


def test_retransmitted_syn_ack_keeps_the_begin_and_a_reused_tuple_starts_anew() -> None:
    syn_ack = segment(Direction.INGRESS, SERVER, CLIENT, SYN | ACK, ack=1001, ns=10)
    again = syn_ack._replace(timestamp_ns=20)
    fin = segment(Direction.EGRESS, CLIENT, SERVER, FIN | ACK, ns=100)
    reused = segment(Direction.INGRESS, SERVER, CLIENT, SYN | ACK, ack=5001, ns=200)
    late_copy = syn_ack._replace(timestamp_ns=150)  # of the ended connection: no reopening
    events, _ = run([syn_ack, again, fin, late_copy, reused, fin._replace(timestamp_ns=260)])
    assert [(e["begin"], e["duration_ns"]) for e in events] == [("seen", 90), ("seen", 60)]


def test_open_table_is_bounded_and_evictions_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(end, "OPEN_CONNECTIONS", 2)
    clients = [("192.0.2.10", 40000 + i) for i in range(3)]
    begins = [segment(Direction.INGRESS, SERVER, c, SYN | ACK) for c in clients]
    fins = [segment(Direction.EGRESS, c, SERVER, FIN | ACK) for c in clients]
    events, counts = run(begins + fins)
    assert [e["begin"] for e in events] == ["missed", "seen", "seen"]  # the oldest went
    assert counts["net_flow_tcp_end.flow_table_evictions"] == 1
