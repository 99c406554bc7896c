"""net_flow_tcp_begin's handshake_ns from the real probe, across a delay line of known delay
between two network namespaces (tests/tools/delay_line.py), against the client's own
measure of its connect()."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from runs import Hostcore
from traffic import TOOLS, http_server, no_syncookies

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

# From 198.18.0.0/15, the range set aside for benchmark test hosts.
CLIENT_ADDRESS, SERVER_ADDRESS = "198.18.1.1", "198.18.1.2"
CONNECTIONS = 3
# What the delay line's own scheduling and the client's connect() may add to the delay
# (generous: it bounds the test's tools, not hostcore).
SLACK_NS = 50_000_000
INITIAL_RTO_NS = 1_000_000_000  # TCP_TIMEOUT_INIT: when a SYN with no answer is sent again
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


def connect_from(netns: str, port: int) -> tuple[int, int]:
    """One connection from ``netns`` to the server: the client's port, its connect() in ns."""
    command = ["ip", "netns", "exec", netns, sys.executable, "-c", CONNECT]
    out = subprocess.run([*command, SERVER_ADDRESS, str(port)], check=True, capture_output=True)
    local_port, took_ns = out.stdout.split()
    return int(local_port), int(took_ns)


def outgoing_handshakes(
    tmp_path: Path, client_ns: str, server_ns: str, connections: int
) -> tuple[dict[int, int], dict[int, int]]:
    """Connections from the client namespace under a run of hostcore: each client port's
    connect() as the client timed it, and the handshake_ns of its outgoing begin."""
    with (
        http_server(SERVER_ADDRESS, netns=server_ns) as port,
        no_syncookies(server_ns),
        Hostcore(tmp_path) as hostcore,
    ):
        connects = dict(connect_from(client_ns, port) for _ in range(connections))
        events = hostcore.stop()
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
    return connects, outgoing


@pytest.mark.parametrize("delay_line", [(20,), (50,)], indirect=True, ids=["20ms", "50ms"])
def test_outgoing_handshake_is_the_round_trip_the_client_waited(
    tmp_path: Path, delay_line: tuple[str, str, int]
) -> None:
    client_ns, server_ns, delay_ns = delay_line
    connects, outgoing = outgoing_handshakes(tmp_path, client_ns, server_ns, CONNECTIONS)
    for local_port, took_ns in connects.items():
        # The SYN and the SYN+ACK each crossed the delay line once; the client's connect()
        # began before the probe's stamp and returned after the SYN+ACK was handled.
        assert 2 * delay_ns <= outgoing[local_port] <= took_ns <= 2 * delay_ns + SLACK_NS


@pytest.mark.parametrize("delay_line", [(20, "drop-first-syn")], indirect=True, ids=["20ms"])
def test_a_syn_sent_again_is_in_the_handshake(
    tmp_path: Path, delay_line: tuple[str, str, int]
) -> None:
    """The first SYN of each connection is lost: the kernel sends it again after its initial
    retransmission timeout (1 s), and the handshake counts from connect() all the same."""
    client_ns, server_ns, delay_ns = delay_line
    connects, outgoing = outgoing_handshakes(tmp_path, client_ns, server_ns, 2)
    for local_port, took_ns in connects.items():
        assert INITIAL_RTO_NS + 2 * delay_ns <= outgoing[local_port] <= took_ns
        assert took_ns <= INITIAL_RTO_NS + 2 * delay_ns + SLACK_NS
