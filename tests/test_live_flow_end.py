"""net_flow_tcp_end from the real probe: one end per begin, the closer, FIN or RST."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runs import Hostcore, both_ends, flows, with_community_id
from traffic import (
    TOOLS,
    AcceptServer,
    connect_once,
    connected_pair,
    curl,
    http_server,
    nginx,
    no_syncookies,
)

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

END = "net_flow_tcp_end"
CLOSE = ("closed_by", "closed_with", "begin")


def ends_of_begins(
    events: list[dict[str, Any]], ports: set[int], client_first: bool, kind: str = "fin"
) -> Counter[tuple[Any, ...]]:
    """The end each begin must have: the first closer's socket says local, the other remote."""
    expected: Counter[tuple[Any, ...]] = Counter()
    for flow, n in flows(events, ports).items():
        local = (flow[0] == "outgoing") == client_first
        expected[(*flow, "local" if local else "remote", kind, "seen")] += n
    return expected


def test_python_server_closing_first_over_ipv4_and_ipv6(tmp_path: Path) -> None:
    with (
        AcceptServer() as server4,
        AcceptServer("::1", socket.AF_INET6) as server6,
        no_syncookies(),
        Hostcore(tmp_path) as hostcore,
    ):
        clients = [connect_once("127.0.0.1", server4.port) for _ in range(10)]
        clients6 = [connect_once("::1", server6.port, socket.AF_INET6) for _ in range(10)]
        events = hostcore.stop()
    ports = {server4.port, server6.port}
    begins = Counter(
        f for ip, port in clients for f in both_ends(ip, port, "127.0.0.1", server4.port)
    )
    begins.update(f for ip, port in clients6 for f in both_ends(ip, port, "::1", server6.port))
    assert flows(events, ports) == begins
    ends = flows(events, ports, END, CLOSE)
    assert ends == ends_of_begins(events, ports, client_first=False)
    assert sum(ends.values()) == 40
    # The listeners are older than hostcore: an end names the process its begin named.
    assert contexts(events, ports, END) == contexts(events, ports, "net_flow_tcp_begin")
    assert {c["pid"] for c in contexts(events, ports, END).values()} == {os.getpid()}


def contexts(
    events: list[dict[str, Any]], ports: set[int], name: str
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Each socket's context in ``name`` events, by direction and 4-tuple."""
    return {flow: event["context"] for event in events for flow in flows([event], ports, name)}


def test_curl_closing_first_to_nginx_over_ipv4_and_ipv6(tmp_path: Path) -> None:
    with nginx(tmp_path) as port, no_syncookies(), Hostcore(tmp_path) as hostcore:
        clients = [curl(f"http://{host}:{port}/") for host in ["127.0.0.1", "[::1]"] * 3]
        events = hostcore.stop()
    assert flows(events, {port}) == Counter(f for c in clients for f in both_ends(*c))
    ends = flows(events, {port}, END, CLOSE)
    assert ends == ends_of_begins(events, {port}, client_first=True)
    assert sum(ends.values()) == 12
    # Both sockets' begins and ends carry the connection's one Community ID, as an
    # independent implementation computes it from what curl reported.
    identified = Counter(with_community_id(f) for c in clients for f in both_ends(*c))
    assert flows(events, {port}, extra=("community_id",)) == identified
    assert flows(events, {port}, END, ("community_id",)) == identified


class HeldConnection:
    """tests/tools/held_connection.py in a network namespace: connected once started,
    it closes on ``close()``, after reading the server's whole answer (the server closes first)."""

    def __init__(self, netns: str, host: str, port: int) -> None:
        script = str(TOOLS / "held_connection.py")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, script, host, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin, self._stdout = self.process.stdin, self.process.stdout
        _, address, local_port = self._stdout.readline().split()
        self.local = (address, int(local_port))

    def close(self) -> None:
        self._stdin.write("go\n")
        self._stdin.flush()
        assert self._stdout.readline() == "closed\n"
        assert self.process.wait(timeout=30) == 0


@pytest.fixture
def netns_server(netns_pair: tuple[str, str, str]) -> Iterator[tuple[str, str, int]]:
    """A Python HTTP/1.0 server in the server namespace: (client ns, server ip, port)."""
    client_ns, server_ns, server_ip = netns_pair
    with http_server(server_ip, netns=server_ns) as port, no_syncookies(server_ns):
        yield client_ns, server_ip, port


def test_between_two_network_namespaces(tmp_path: Path, netns_server: tuple[str, str, int]) -> None:
    """The server closes first; the client reads to the end, then closes."""
    client_ns, server_ip, port = netns_server
    with Hostcore(tmp_path) as hostcore:
        clients = []
        for _ in range(3):
            client = HeldConnection(client_ns, server_ip, port)
            client.close()
            clients.append(client.local)
        events = hostcore.stop()
    begins = Counter(f for ip, p in clients for f in both_ends(ip, p, server_ip, port))
    assert flows(events, {port}) == begins
    ends = flows(events, {port}, END, CLOSE)
    assert ends == ends_of_begins(events, {port}, client_first=False)
    assert sum(ends.values()) == 6


def test_reset_by_the_client_and_duration(tmp_path: Path) -> None:
    """SO_LINGER 0: close() sends a RST; the end's duration fits in the connection's life."""
    with no_syncookies(), Hostcore(tmp_path) as hostcore:
        started = time.monotonic_ns()
        with connected_pair() as (listener, client, server_side):
            port = listener.getsockname()[1]
            local = client.getsockname()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            with pytest.raises(ConnectionResetError):
                server_side.recv(1)
        lived = time.monotonic_ns() - started
        events = hostcore.stop()
    flow = ("127.0.0.1", "127.0.0.1", local[1], port)
    assert flows(events, {port}, END, CLOSE) == Counter(
        {
            ("outgoing", *flow, "local", "rst", "seen"): 1,
            ("incoming", *flow, "remote", "rst", "seen"): 1,
        }
    )
    ours = [e for e in events if e["name"] == END and e["data"]["dst_port"] == port]
    begins = [
        e for e in events if e["name"] == "net_flow_tcp_begin" and e["data"]["dst_port"] == port
    ]
    for event in ours:
        assert 0 < event["data"]["duration_ns"] <= lived
    assert max(e["timestamp"] for e in begins) < min(e["timestamp"] for e in ours)


def test_connection_open_before_the_run_ends_as_pre_existing(tmp_path: Path) -> None:
    with connected_pair() as (listener, old, old_server_side), no_syncookies():
        port = listener.getsockname()[1]
        client = old.getsockname()
        with Hostcore(tmp_path) as hostcore:
            old.close()  # the client closes first
            assert old_server_side.recv(1) == b""
            old_server_side.close()
            events = hostcore.stop()
    assert flows(events, {port}) == Counter()  # no begin is invented
    assert flows(events, {port}, END, CLOSE) == Counter(
        {
            (
                "outgoing",
                client[0],
                "127.0.0.1",
                client[1],
                port,
                "local",
                "fin",
                "pre_existing",
            ): 1,
            (
                "incoming",
                client[0],
                "127.0.0.1",
                client[1],
                port,
                "remote",
                "fin",
                "pre_existing",
            ): 1,
        }
    )
    ours = [e for e in events if e["name"] == END and e["data"]["dst_port"] == port]
    assert {(e["context"]["pid"], e["context"]["owner"]) for e in ours} == {(os.getpid(), "found")}
    assert all(e["data"]["duration_ns"] is None for e in ours)
    assert hostcore.log("open connections read")["connections"] >= 2


def test_connection_open_before_the_run_in_other_namespaces(
    tmp_path: Path, netns_server: tuple[str, str, int]
) -> None:
    """Each network namespace is read at start-up: the client's and the server's."""
    client_ns, server_ip, port = netns_server
    client = HeldConnection(client_ns, server_ip, port)
    with Hostcore(tmp_path) as hostcore:
        client.close()
        events = hostcore.stop()
    local = client.local
    flow = (local[0], server_ip, local[1], port)
    assert flows(events, {port}, END, CLOSE) == Counter(
        {
            ("outgoing", *flow, "remote", "fin", "pre_existing"): 1,
            ("incoming", *flow, "local", "fin", "pre_existing"): 1,
        }
    )
    pids = {
        e["data"]["conn_direction"]: e["context"]["pid"]
        for e in events
        if e["name"] == END and e["data"]["dst_port"] == port
    }
    assert pids["outgoing"] == client.process.pid


def test_connection_closing_at_start_ends_with_its_begin_missed(tmp_path: Path) -> None:
    """The server closed before the run: neither socket is established then, so none is
    read; the client's close ends both sockets' connection, flagged ``missed``."""
    with connected_pair() as (listener, client, server_side), no_syncookies():
        port = listener.getsockname()[1]
        local = client.getsockname()
        server_side.shutdown(socket.SHUT_WR)  # a FIN; closed, its socket would be orphaned
        assert client.recv(1) == b""  # the client is in CLOSE_WAIT, the server in FIN_WAIT2
        with Hostcore(tmp_path) as hostcore:
            client.close()
            events = hostcore.stop()
    # The direction is unknown; src is each socket's own end.
    assert flows(events, {port}, END, CLOSE) == Counter(
        {
            ("unknown", local[0], "127.0.0.1", local[1], port, "local", "fin", "missed"): 1,
            ("unknown", "127.0.0.1", local[0], port, local[1], "remote", "fin", "missed"): 1,
        }
    )


def test_a_syn_scan_of_the_listener_does_not_hide_later_ends(tmp_path: Path) -> None:
    """nmap -sS answers the listener's SYN+ACK with a RST, which reaches the listening socket:
    it must not mark the listener, whose mark its accepted sockets would inherit."""
    with nginx(tmp_path) as port, no_syncookies(), Hostcore(tmp_path) as hostcore:
        subprocess.run(
            ["nmap", "-n", "-Pn", "-sS", "-p", str(port), "127.0.0.1"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        clients = [curl(f"http://127.0.0.1:{port}/") for _ in range(3)]
        events = hostcore.stop()
    client_ports = {client_port for _, client_port, _, _ in clients}
    ours = [e for e in events if e["data"].get("src_port") in client_ports]  # not nmap's
    assert flows(ours, {port}) == Counter(f for c in clients for f in both_ends(*c))
    assert flows(ours, {port}, END, CLOSE) == ends_of_begins(ours, {port}, client_first=True)
