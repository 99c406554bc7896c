"""hostcore replay's end totals and handshakes on captures built here, for what live
traffic on loopback does not make: sequence numbers that wrap, data out of order, a
capture that stops before the close, a 4-tuple used again before it. (Live traffic
replayed against the probe: test_live_totals.py and test_live_handshake.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from capture_tools import replay
from captures import ethernet, pcap
from packets import ACK, FIN, RST, SYN, ipv4, tcp

from hostcore.capture import connections

CLIENT, SERVER = ("10.0.0.1", 40000), ("192.0.2.7", 443)  # the client local, the server not
START_NS = 1_700_000_000 * 10**9
Segment = tuple[bool, int, int, int, int]  # from the client?, flags, seq, ack, data bytes


def frames(segments: list[Segment], client_port: int = CLIENT[1]) -> list[bytes]:
    """Each segment as an Ethernet frame, the client on ``client_port``."""
    built = []
    for out, flags, seq, ack, size in segments:
        client, server = (CLIENT[0], client_port), SERVER
        (src, sport), (dst, dport) = (client, server) if out else (server, client)
        body = tcp(sport, dport, flags, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF) + bytes(size)
        built.append(ethernet(ipv4(src, dst, body)))
    return built


def replayed(tmp_path: Path, segments: list[Segment], *args: str) -> list[dict[str, Any]]:
    return replayed_frames(tmp_path, frames(segments), *args)


def replayed_frames(tmp_path: Path, built: list[bytes], *args: str) -> list[dict[str, Any]]:
    """The events of a capture of ``built``, one frame a millisecond."""
    path = tmp_path / "built.pcap"
    with path.open("wb") as out:
        pcap(out, ((START_NS + n * 1_000_000, frame) for n, frame in enumerate(built)))
    events = replay(tmp_path, str(path), "--events", "flows", *args)
    return [event["data"] for event in events]


def connection(isn: int, server_isn: int, up: int, down: int) -> list[Segment]:
    """A handshake, ``up`` bytes out and ``down`` back, and the client's close."""
    c, s = isn + 1, server_isn + 1
    return [
        (True, SYN, isn, 0, 0),
        (False, SYN | ACK, server_isn, c, 0),
        (True, ACK, c, s, up),
        (False, ACK, s, c + up, down),
        (True, FIN | ACK, c + up, s + down, 0),
        (False, FIN | ACK, s + down, c + up + 1, 0),
        (True, ACK, c + up + 1, s + down + 1, 0),
    ]


def totals(event: dict[str, Any]) -> tuple[Any, ...]:
    names = ("bytes_sent", "bytes_received", "segments_sent", "segments_received")
    return tuple(event[name] for name in (*names, "retransmits", "srtt_us", "min_rtt_us"))


def test_bytes_count_across_a_sequence_number_wrap(tmp_path: Path) -> None:
    events = replayed(tmp_path, connection(2**32 - 10, 2**32 - 3, 3000, 70))
    begin, end = events  # the begin, then the end at the close
    assert begin["handshake_ns"] == 1_000_000  # the SYN's capture time to the SYN+ACK's
    assert (end["closed_by"], end["closed_with"]) == ("local", "fin")
    assert totals(end) == (3000, 70, 4, 3, 0, None, None)


def test_data_out_of_order_counts_once_and_a_repeat_is_a_retransmission(tmp_path: Path) -> None:
    isn, server_isn = 5000, 9000
    c, s = isn + 1, server_isn + 1
    segments = [
        (True, SYN, isn, 0, 0),
        (False, SYN | ACK, server_isn, c, 0),
        (False, ACK, s + 100, c, 50),  # arrives before the 100 bytes it follows
        (False, ACK, s, c, 100),
        (True, ACK, c, s + 150, 10),
        (True, ACK, c, s + 150, 10),  # sent again
        (False, ACK | RST, s + 150, c + 10, 0),
    ]
    (end,) = [event for event in replayed(tmp_path, segments) if "closed_by" in event]
    assert (end["closed_by"], end["closed_with"]) == ("remote", "rst")
    assert totals(end) == (10, 150, 3, 4, 1, None, None)


def test_an_end_whose_close_is_not_in_the_capture_comes_without_totals(tmp_path: Path) -> None:
    """The client's FIN is held for the close; the capture stops before it."""
    segments = connection(100, 200, 10, 20)[:5]
    (end,) = [event for event in replayed(tmp_path, segments) if "closed_by" in event]
    assert (end["closed_by"], end["begin"]) == ("local", "seen")
    assert totals(end) == (None,) * 7


def test_a_four_tuple_used_again_before_its_close_ends_the_first_connection(
    tmp_path: Path,
) -> None:
    """A new SYN on the same ports (a new ISN) while the first connection's FIN waits
    for a close the capture does not hold: the first ends without totals, the second
    with its own."""
    first = connection(100, 200, 10, 20)[:5]
    second = connection(50_000, 60_000, 1, 2)
    ends = [event for event in replayed(tmp_path, first + second) if "closed_by" in event]
    assert [totals(end) for end in ends] == [(None,) * 7, (1, 2, 4, 3, 0, None, None)]


def test_data_refused_after_a_close_is_not_counted_as_received(tmp_path: Path) -> None:
    """The client close()s; data the server sends after that is answered with a RST
    that acknowledges none of it, as the kernel does: none of it was taken in."""
    c, s = 101, 201
    segments = [
        *connection(100, 200, 10, 0)[:3],
        (True, FIN | ACK, c + 10, s, 0),
        (False, ACK, s, c + 11, 500),  # after the client's FIN: refused
        (True, RST | ACK, c + 11, s, 0),
    ]
    (end,) = [event for event in replayed(tmp_path, segments) if "closed_by" in event]
    assert (end["closed_by"], end["closed_with"]) == ("local", "fin")
    assert totals(end)[:2] == (10, 0)


def test_an_accepted_socket_does_not_count_the_syn_ack_it_did_not_send(tmp_path: Path) -> None:
    """The server local this time (--local-net): its listener sent the SYN+ACK, which
    live is not among the accepted socket's segments; a second one is a retransmission."""
    segments = connection(100, 200, 10, 20)
    segments.insert(2, segments[1])  # the SYN+ACK sent again
    events = replayed(tmp_path, segments, "--local-net", "192.0.2.0/24")
    (end,) = [event for event in events if "closed_by" in event]
    assert (end["conn_direction"], end["closed_by"]) == ("incoming", "remote")
    assert totals(end)[:5] == (20, 10, 2, 4, 1)


def test_handshakes_that_never_end_do_not_push_out_established_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Room for 4: an established connection stays followed under 10 unanswered SYNs
    (a scan), and is forgotten, counted, only when 4 newer ones are established."""
    monkeypatch.setattr(connections, "CONNECTIONS", 4)
    first = frames(connection(100, 200, 10, 20))  # its FIN (held) is the 5th
    scan = [frame for n in range(10) for frame in frames([(True, SYN, 7, 0, 0)], 50_000 + n)]
    kept = first[:5] + scan + first[5:]
    (end,) = [event for event in replayed_frames(tmp_path, kept) if "closed_by" in event]
    assert totals(end)[:2] == (10, 20)
    assert "connections forgotten (their ends without totals): 0" in capsys.readouterr().err
    newer = [frame for n in range(4) for frame in frames(connection(7, 9, 1, 1)[:2], 60_000 + n)]
    ends = replayed_frames(tmp_path, first[:5] + newer + first[5:])
    assert [totals(end) for end in ends if "closed_by" in end] == [(None,) * 7]
    assert "connections forgotten (their ends without totals): 1" in capsys.readouterr().err
