"""net_flow_tcp_failed from the real probe: refused by a closed port, unanswered by a peer."""

from __future__ import annotations

import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runs import Hostcore, both_ends, flows
from traffic import (
    AcceptServer,
    connect_once,
    curl,
    free_port,
    http_server,
    in_place,
    no_syncookies,
)
from waiting import READY_TIMEOUT_S

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

FAILED = "net_flow_tcp_failed"


def hostcore_with_timeout(tmp_path: Path, seconds: float) -> Hostcore:
    config = tmp_path / "failed.toml"
    config.write_text(f"[events.{FAILED}]\nsyn_timeout_s = {seconds}\n")
    return Hostcore(tmp_path, ["--events", f"flows,{FAILED}", "--config", str(config)])


def test_closed_ports_refuse_python_and_curl(tmp_path: Path) -> None:
    closed, closed_for_curl = free_port(), free_port()
    with (
        AcceptServer() as server,
        no_syncookies(),
        hostcore_with_timeout(tmp_path, 30) as hostcore,
    ):
        with socket.socket() as client, pytest.raises(ConnectionRefusedError):
            client.bind(("127.0.0.1", 0))
            local_port = client.getsockname()[1]
            client.connect(("127.0.0.1", closed))
        refused = subprocess.run(
            ["curl", "-sS", f"http://127.0.0.1:{closed_for_curl}/"], check=False
        )
        assert refused.returncode == 7  # curl: failed to connect
        control = connect_once("127.0.0.1", server.port)
        events = hostcore.stop()
    assert flows(events, {closed}, FAILED, ("reason",)) == Counter(
        {("outgoing", "127.0.0.1", "127.0.0.1", local_port, closed, "refused"): 1}
    )
    [by_curl] = [
        e for e in events if e["name"] == FAILED and e["data"]["dst_port"] == closed_for_curl
    ]
    assert (by_curl["data"]["reason"], by_curl["context"]["comm"]) == ("refused", "curl")
    assert flows(events, {server.port}, FAILED) == Counter()  # the answered one did not fail
    assert flows(events, {server.port}) == Counter(both_ends(*control, "127.0.0.1", server.port))
    # A refused connection never began, so it does not end either.
    assert flows(events, {closed, closed_for_curl}, "net_flow_tcp_end") == Counter()


def dropping_syns(netns: str, port: int) -> None:
    """nftables in ``netns`` drops every SYN to ``port``: the peer never answers."""
    ruleset = f"""
    table inet hostcore_test {{
        chain input {{
            type filter hook input priority 0; policy accept;
            tcp dport {port} tcp flags & (syn | ack) == syn drop
        }}
    }}
    """
    subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "-f", "-"], input=ruleset, text=True, check=True
    )


def wait_for(hostcore: Hostcore, found: Callable[[list[dict[str, Any]]], bool]) -> None:
    """Until the events written so far satisfy ``found`` (they reach the file as they come)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not found(hostcore.events()):
        assert time.monotonic() < deadline, "the expected events never came"
        time.sleep(0.05)


def test_peer_dropping_syns_leaves_the_attempt_unanswered(
    tmp_path: Path, netns_pair: tuple[str, str, str]
) -> None:
    client_ns, server_ns, server_ip = netns_pair
    with (
        http_server(server_ip, netns=server_ns) as dropped,
        http_server(server_ip, netns=server_ns) as answered,
        no_syncookies(server_ns),
    ):
        dropping_syns(server_ns, dropped)
        with hostcore_with_timeout(tmp_path, 1) as hostcore:
            before_ns = time.time_ns()
            attempt = subprocess.run(
                ["ip", "netns", "exec", client_ns, "curl", "-sS", "--local-port", "40000",
                 "--connect-timeout", "3", f"http://{server_ip}:{dropped}/"],
                check=False, capture_output=True, text=True,
            )  # fmt: skip
            assert attempt.returncode == 28, attempt.stderr  # curl: timed out
            gave_up_ns = time.time_ns()
            control = curl(f"http://{server_ip}:{answered}/", netns=client_ns)
            wait_for(hostcore, lambda events: bool(flows(events, {dropped}, FAILED)))
            events = hostcore.stop()
    assert flows(events, {dropped}, FAILED, ("reason",)) == Counter(
        {("outgoing", "198.18.0.1", server_ip, 40000, dropped, "unanswered"): 1}
    )  # one, though curl's SYN was sent again after 1 s
    [failed] = [e for e in events if e["name"] == FAILED and e["data"]["dst_port"] == dropped]
    assert failed["context"]["comm"] == "curl"
    # Its time is the SYN's plus the timeout, before curl gave up after 3 s.
    assert before_ns + 10**9 <= failed["timestamp"] < gave_up_ns
    assert flows(events, {answered}, FAILED) == Counter()
    assert flows(events, {answered}) == Counter(both_ends(*control))


def test_nmap_scan_of_closed_ports_is_refused_and_found_by_connection_scan(
    tmp_path: Path, netns_pair: tuple[str, str, str]
) -> None:
    """Nothing listens in the server namespace: every probe is refused, and the signature
    that consumes net_flow_tcp_failed (issue 10's connection_scan) reports the scan."""
    client_ns, _, server_ip = netns_pair
    ports = list(range(40001, 40031))
    config = tmp_path / "scan.toml"
    config.write_text("[signatures.connection_scan]\nmax_distinct = 20\nwindow_s = 60\n")
    args = ["--events", "connection_scan,network_events", "--config", str(config)]
    with Hostcore(tmp_path, args) as hostcore:
        command = ["nmap", "-sT", "-Pn", "-n", "-p", ",".join(map(str, ports)), server_ip]
        nmap = subprocess.Popen(
            in_place(command, client_ns, None), stdout=subprocess.PIPE, text=True
        )
        report = nmap.communicate(timeout=120)[0]
        events = hostcore.stop()
    assert nmap.returncode == 0 and f"{len(ports)} closed tcp ports (conn-refused)" in report
    by_nmap = [e for e in events if e["name"] == FAILED and e["context"]["pid"] == nmap.pid]
    assert Counter((e["data"]["dst_port"], e["data"]["reason"]) for e in by_nmap) == Counter(
        (port, "refused") for port in ports
    )
    [scan] = [
        e for e in events if e["name"] == "connection_scan" and e["context"]["pid"] == nmap.pid
    ]
    assert len(scan["data"]["distinct_ports"]) == 21
    assert set(scan["data"]["distinct_ports"]) <= set(ports)
