"""The built-in signatures on the real probe, with real clients, servers, DNS and a real scanner."""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dns_server import dns_netns
from runs import Hostcore
from traffic import (
    AcceptServer,
    connect_once,
    curl,
    http_server,
    http_servers,
    in_place,
    no_syncookies,
)

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

ZONE = [
    "host-record=edge.cdn.test,127.0.9.2",
    "cname=www.evil.test,edge.cdn.test",  # denied by its question name
    "host-record=ads7.cdn.test,127.0.9.3",
    "cname=promo.shop.test,ads7.cdn.test",  # denied by the CNAME it leads to
    "host-record=plain.test,127.0.9.1",  # allowed
]


def config(workdir: Path, text: str) -> list[str]:
    path = workdir / "hostcore.toml"
    path.write_text(textwrap.dedent(text))
    return ["--config", str(path)]


def findings(events: list[dict[str, Any]], name: str, port: int) -> list[dict[str, Any]]:
    """``name`` findings whose triggering connection went to ``port`` (the host has others)."""
    return [
        event
        for event in events
        if event["name"] == name and event["data"]["triggered_by"][-1]["data"]["dst_port"] == port
    ]


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[str]:
    with dns_netns(ZONE, tmp_path) as name:
        yield name


def test_curl_to_a_denied_name_gives_one_finding_with_curls_context(
    tmp_path: Path, netns: str
) -> None:
    args = [
        "--events",
        "denied_domain",
        *config(tmp_path, '[signatures.denied_domain]\ndomains = ["evil.test", "ads?.cdn.test"]\n'),
    ]
    with (
        http_server("::", netns=netns) as port,
        no_syncookies(netns),
        Hostcore(tmp_path, args) as run,
    ):
        denied = curl(f"http://www.evil.test:{port}/", netns=netns)
        via_cname = curl(f"http://promo.shop.test:{port}/", netns=netns)
        allowed = curl(f"http://plain.test:{port}/", netns=netns)
        events = run.stop()
    assert run.log("ready")["signatures"] == ["denied_domain"]
    assert run.log("ready")["for_signatures_only"] == ["net_flow_tcp_begin"]
    found = findings(events, "denied_domain", port)
    by_client = Counter(
        (e["data"]["triggered_by"][0]["data"]["src_port"], e["data"]["domain"], e["data"]["rule"])
        for e in found
    )
    assert by_client == Counter(
        [
            (denied[1], "www.evil.test", "evil.test"),
            (via_cname[1], "ads7.cdn.test", "ads?.cdn.test"),
        ]
    )
    assert allowed[1] not in {e["data"]["triggered_by"][0]["data"]["src_port"] for e in found}
    for finding in found:
        assert finding["context"]["comm"] == "curl" and finding["context"]["pid"] is not None
        assert finding["data"]["signature"]["id"] == "HCS-1"
        assert finding["data"]["triggered_by"][0]["context"] == finding["context"]
    assert not [e for e in events if e["name"] == "net_flow_tcp_begin"]  # selected: findings only


def test_an_nmap_scan_is_a_scan_and_as_many_requests_to_one_port_are_not(
    tmp_path: Path, netns_pair: tuple[str, str, str]
) -> None:
    client, server, address = netns_pair
    args = [
        "--events",
        "connection_scan,flows",
        *config(tmp_path, "[signatures.connection_scan]\nmax_distinct = 20\nwindow_s = 60\n"),
    ]
    servers = http_servers(address, 30, netns=server)
    with servers as (ports, _), no_syncookies(server), Hostcore(tmp_path, args) as run:
        # A connect scan (-sT): nmap's own sockets, so the probe knows their process.
        nmap = subprocess.Popen(
            in_place(["nmap", "-sT", "-Pn", "-n", "-p", ",".join(map(str, ports)), address],
                     client, None),
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        report = nmap.communicate(timeout=120)[0]
        # One curl process, 30 requests to one port; HTTP/1.0: a connection each.
        url = f"http://{address}:{ports[0]}/"
        requests = [arg for _ in ports for arg in ("-o", "/dev/null", url)]
        one_port = subprocess.Popen(
            in_place(["curl", "-sS", "--noproxy", "*", "-w", "%{local_port}\\n", *requests],
                     client, None),
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        local_ports = one_port.communicate(timeout=120)[0].split()
        events = run.stop()
    assert nmap.returncode == 0 and report.count("/tcp open") == len(ports)
    assert len(set(local_ports)) == len(ports)  # as many connections as nmap made
    scans = [e for e in events if e["name"] == "connection_scan"]
    mine = [e for e in scans if e["context"]["pid"] == nmap.pid]
    assert len(mine) == 1 and mine[0]["context"]["comm"] == "nmap"
    data = mine[0]["data"]
    assert len(data["distinct_ports"]) == 21 and set(data["distinct_ports"]) <= set(ports)
    assert data["distinct_hosts"] == [address]
    assert not [e for e in scans if e["context"]["pid"] == one_port.pid]
    curl_begins = [
        e
        for e in events
        if e["name"] == "net_flow_tcp_begin"
        and e["context"]["pid"] == one_port.pid
        and e["data"]["conn_direction"] == "outgoing"
    ]
    assert sorted(str(e["data"]["src_port"]) for e in curl_begins) == sorted(local_ports)


def test_a_connection_to_a_port_off_the_allow_list_is_reported_once(tmp_path: Path) -> None:
    with AcceptServer() as allowed, AcceptServer() as unexpected, no_syncookies():
        options = f"[signatures.unexpected_listener]\nallowed_ports = [{allowed.port}]\n"
        args = ["--events", "unexpected_listener", *config(tmp_path, options)]
        with Hostcore(tmp_path, args) as run:
            connect_once("127.0.0.1", allowed.port)
            first = connect_once("127.0.0.1", unexpected.port)
            connect_once("127.0.0.1", unexpected.port)  # within quiet_s: no second finding
            events = run.stop()
    assert findings(events, "unexpected_listener", allowed.port) == []
    [finding] = findings(events, "unexpected_listener", unexpected.port)
    assert finding["data"]["src"] == "127.0.0.1"
    assert finding["data"]["triggered_by"][0]["data"]["src_port"] == first[1]
    assert finding["context"]["pid"] == os.getpid()  # the listener's owner: this test
    assert run.log("totals")["unexpected_listener.repeats"] >= 1
