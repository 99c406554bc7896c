"""net_flow_tcp_begin's handshake_ns from the real probe, across a delay line of known delay
between two network namespaces (tests/tools/delay_line.py), against the client's own
measure of its connect()."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from capture_tools import replay, tcpdump
from runs import Hostcore
from traffic import TOOLS, closing_sockets, http_server, no_syncookies
from waiting import wait_until

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

# From 198.18.0.0/15, the range set aside for benchmark test hosts.
CLIENT_ADDRESS, SERVER_ADDRESS = "198.18.1.1", "198.18.1.2"
CONNECTIONS = 3
# What the delay line's own scheduling and the client's connect() may add to the delay
# (generous: it bounds the test's tools, not hostcore).
SLACK_NS = 50_000_000
INITIAL_RTO_NS = 1_000_000_000  # TCP_TIMEOUT_INIT: when a SYN with no answer is sent again
BEGIN, END = "net_flow_tcp_begin", "net_flow_tcp_end"
# What a replay of the client side's capture gives the same as the client socket's end.
SAME = (
    *("src", "dst", "dst_port", "community_id", "closed_by", "closed_with", "begin"),
    *("bytes_sent", "bytes_received", "retransmits"),
)
SEGMENTS = ("segments_sent", "segments_received")
# Connects once and prints its port and how long connect() took, by its own clock.
CONNECT = (
    "import socket, sys, time; s = socket.socket(); started = time.monotonic_ns(); "
    "s.connect((sys.argv[1], int(sys.argv[2]))); "
    "print(s.getsockname()[1], time.monotonic_ns() - started)"
)


@pytest.fixture
def delay_line(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, int]]:
    """Client and server namespaces joined by a delay line: ``request.param`` is its delay
    each way in ms, then its options; yields (client ns, server ns, delay in ns)."""
    delay_ms, *options = request.param
    client, server = f"hc-dcli-{os.getpid()}", f"hc-dsrv-{os.getpid()}"
    line = None
    try:
        for name in (client, server):
            subprocess.run(["ip", "netns", "add", name], check=True)
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        command = [sys.executable, str(TOOLS / "delay_line.py"), client, CLIENT_ADDRESS]
        command += [server, SERVER_ADDRESS, str(delay_ms), *options]
        line = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert line.stdout is not None and line.stderr is not None
        if line.stdout.readline() != "ready\n":  # it exited: say why
            pytest.fail(f"the delay line did not start: {line.stderr.read()}")
        yield client, server, delay_ms * 1_000_000
    finally:
        if line is not None:
            assert line.stdin is not None
            line.stdin.close()  # it stops at the end of its input
            line.wait(timeout=30)
        for name in (client, server):
            subprocess.run(["ip", "netns", "del", name], check=False)


# Asks the server for a page, reads it to the server's close, prints its port, and
# closes its own end only when told (a line on its input): meanwhile ss can read it.
HOLD_OPEN = (
    "import socket, sys; s = socket.create_connection((sys.argv[1], int(sys.argv[2]))); "
    "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); "
    "[None for _ in iter(lambda: s.recv(65536), b'')]; "
    "print(s.getsockname()[1], flush=True); sys.stdin.readline(); s.close()"
)


def ss_rtt_us(netns: str, port: int) -> int:
    """The smoothed RTT that ``ss -ti`` shows for the client socket on ``port``."""
    command = ["ip", "netns", "exec", netns, "ss", "-tiHn", "src", f"{CLIENT_ADDRESS}:{port}"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rtt_ms = next(word for word in out.split() if word.startswith("rtt:"))[4:].split("/")[0]
    return round(float(rtt_ms) * 1000)


def connect_from(netns: str, port: int) -> tuple[int, int]:
    """One connection from ``netns`` to the server: the client's port, its connect() in ns."""
    command = ["ip", "netns", "exec", netns, sys.executable, "-c", CONNECT]
    out = subprocess.run([*command, SERVER_ADDRESS, str(port)], check=True, capture_output=True)
    local_port, took_ns = out.stdout.split()
    return int(local_port), int(took_ns)


def retransmitted_segments(netns: str) -> int:
    """Tcp RetransSegs of ``netns``: the kernel's own count of segments it sent again."""
    command = ["ip", "netns", "exec", netns, "cat", "/proc/net/snmp"]
    lines = subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()
    names, values = (line.split() for line in lines if line.startswith("Tcp:"))
    return int(dict(zip(names, values, strict=True))["RetransSegs"])


@dataclass
class Handshakes:
    """What one run across the delay line saw, by client port."""

    connects: dict[int, int]  # connect() as the client timed it
    outgoing: dict[int, int]  # handshake_ns of its outgoing begin
    ends: dict[tuple[str, int], dict[str, Any]]  # each socket's end by (direction, port)
    retransmitted: dict[str, int]  # RetransSegs during the run, by side
    replayed: list[dict[str, Any]]  # hostcore replay's events from the client side's capture


def outgoing_handshakes(
    tmp_path: Path, client_ns: str, server_ns: str, connections: int
) -> Handshakes:
    """Connections from the client namespace under a run of hostcore, and a replay of
    them as tcpdump captured them there."""
    namespaces = {"client": client_ns, "server": server_ns}
    capture = tmp_path / "client.pcap"
    with (
        http_server(SERVER_ADDRESS, netns=server_ns) as port,
        no_syncookies(server_ns),
        tcpdump(capture, client_ns),
        Hostcore(tmp_path) as hostcore,
    ):
        before = {side: retransmitted_segments(ns) for side, ns in namespaces.items()}
        connects = dict(connect_from(client_ns, port) for _ in range(connections))
        # The ends come as the sockets close.
        wait_until(
            lambda: not any(closing_sockets(port, ns) for ns in namespaces.values()),
            f"sockets on port {port} closed",
        )
        events = hostcore.stop()
    retransmitted = {
        side: retransmitted_segments(ns) - before[side] for side, ns in namespaces.items()
    }
    ends = {
        (event["data"]["conn_direction"], event["data"]["src_port"]): event["data"]
        for event in events
        if event["name"] == "net_flow_tcp_end" and event["data"]["dst_port"] == port
    }
    assert len(ends) == 2 * connections  # every socket closed, each once
    handshakes = Counter(
        (event["data"]["conn_direction"], event["data"]["src_port"], event["data"]["handshake_ns"])
        for event in events
        if event["name"] == "net_flow_tcp_begin" and event["data"]["dst_port"] == port
    )
    assert sorted(handshakes.values()) == [1] * 2 * connections  # one begin per socket
    # An incoming connection's handshake ends with a bare ACK, which the probe does not see.
    assert {(d, p) for d, p, ns in handshakes if ns is None} == {("incoming", p) for p in connects}
    outgoing = {p: ns for d, p, ns in handshakes if d == "outgoing"}
    assert outgoing.keys() == connects.keys()
    replayed = replay(tmp_path, str(capture), "--events", "flows")
    return Handshakes(connects, outgoing, ends, retransmitted, replayed)


def check_replayed(seen: Handshakes) -> None:
    """The client side's capture replayed: one begin and one end per connection, its
    handshake from the first SYN's capture time (just after connect()) to the SYN+ACK's,
    within 1 ms of the probe's (two clocks), and the client socket's end as live, but
    for the round-trip times, which a capture does not give."""
    begins = {e["data"]["src_port"]: e["data"] for e in seen.replayed if e["name"] == BEGIN}
    assert begins.keys() == seen.connects.keys()
    for port, begin in begins.items():
        assert abs(begin["handshake_ns"] - seen.outgoing[port]) <= 1_000_000
    ends = {e["data"]["src_port"]: e["data"] for e in seen.replayed if e["name"] == END}
    assert ends.keys() == seen.connects.keys()
    for port, end in ends.items():
        live = seen.ends[("outgoing", port)]
        assert {name: end[name] for name in SAME} == {name: live[name] for name in SAME}
        # The client close()s first: live, its counts stop when its FIN is acknowledged,
        # unless the server's FIN came with that ACK; a replay counts to the last ACK,
        # so the server's FIN and the client's ACK of it may be one more each way.
        extra = {end[name] - live[name] for name in SEGMENTS}
        assert extra in ({0}, {1}), (port, extra)
        assert abs(end["duration_ns"] - live["duration_ns"]) <= 1_000_000
        assert end["srtt_us"] is end["min_rtt_us"] is None


@pytest.mark.parametrize("delay_line", [(20,), (50,)], indirect=True, ids=["20ms", "50ms"])
def test_outgoing_handshake_is_the_round_trip_the_client_waited(
    tmp_path: Path, delay_line: tuple[str, str, int]
) -> None:
    client_ns, server_ns, delay_ns = delay_line
    seen = outgoing_handshakes(tmp_path, client_ns, server_ns, CONNECTIONS)
    for local_port, took_ns in seen.connects.items():
        # The SYN and the SYN+ACK each crossed the delay line once; the client's connect()
        # began before the probe's stamp and returned after the SYN+ACK was handled.
        assert 2 * delay_ns <= seen.outgoing[local_port] <= took_ns <= 2 * delay_ns + SLACK_NS
    # Every round trip crossed the line twice: both sockets' RTTs are the line's, and
    # nothing was sent again, as the kernel's own counters agree.
    low, high = 2 * delay_ns // 1000, (2 * delay_ns + SLACK_NS) // 1000
    for end in seen.ends.values():
        assert low <= end["min_rtt_us"] <= end["srtt_us"] <= high
        assert end["retransmits"] == 0
    assert seen.retransmitted == {"client": 0, "server": 0}
    check_replayed(seen)


@pytest.mark.parametrize("delay_line", [(20, "drop-first-syn")], indirect=True, ids=["20ms"])
def test_a_syn_sent_again_is_in_the_handshake(
    tmp_path: Path, delay_line: tuple[str, str, int]
) -> None:
    """The first SYN of each connection is lost: the kernel sends it again after its initial
    retransmission timeout (1 s), and the handshake counts from connect() all the same."""
    client_ns, server_ns, delay_ns = delay_line
    seen = outgoing_handshakes(tmp_path, client_ns, server_ns, 2)
    for local_port, took_ns in seen.connects.items():
        assert INITIAL_RTO_NS + 2 * delay_ns <= seen.outgoing[local_port] <= took_ns
        assert took_ns <= INITIAL_RTO_NS + 2 * delay_ns + SLACK_NS
    # Each client socket sent its SYN twice; the kernel counted the same retransmissions.
    retransmits = {key: end["retransmits"] for key, end in seen.ends.items()}
    assert retransmits == {
        **{("outgoing", port): 1 for port in seen.connects},
        **{("incoming", port): 0 for port in seen.connects},
    }
    assert seen.retransmitted == {"client": 2, "server": 0}
    check_replayed(seen)


@pytest.mark.parametrize("delay_line", [(20,)], indirect=True, ids=["20ms"])
def test_smoothed_rtt_is_what_ss_shows_for_the_socket(
    tmp_path: Path, delay_line: tuple[str, str, int]
) -> None:
    """A client socket held open after its exchange: ``ss -ti`` reads the kernel's
    smoothed RTT; the end event, at the close, carries the same (within 2 ms: the close's
    last ACK is one more sample, on the same fixed delay)."""
    client_ns, server_ns, delay_ns = delay_line
    with (
        http_server(SERVER_ADDRESS, netns=server_ns) as port,
        no_syncookies(server_ns),
        Hostcore(tmp_path) as hostcore,
    ):
        command = ["ip", "netns", "exec", client_ns, sys.executable, "-c", HOLD_OPEN]
        with subprocess.Popen(
            [*command, SERVER_ADDRESS, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as held:
            assert held.stdin is not None and held.stdout is not None
            client_port = int(held.stdout.readline())
            shown_us = ss_rtt_us(client_ns, client_port)
            held.stdin.write("close\n")
            held.stdin.flush()
            assert held.wait(timeout=30) == 0
        wait_until(lambda: not closing_sockets(port, client_ns), "the client socket closed")
        events = hostcore.stop()
    (end,) = [
        e["data"]
        for e in events
        if e["name"] == END
        and e["data"]["conn_direction"] == "outgoing"
        and e["data"]["src_port"] == client_port
    ]
    assert 2 * delay_ns // 1000 <= shown_us
    assert abs(end["srtt_us"] - shown_us) <= 2000
