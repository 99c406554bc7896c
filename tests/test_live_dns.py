"""DNS names on net_flow_tcp_begin from the real probe, a real DNS server and real clients."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dns_server import IPV6_ADDRESS, SERVER, SERVER6, dig, dns_netns
from runs import Hostcore
from traffic import TOOLS, curl, http_server, in_place, no_syncookies

from hostcore.probe.cgroup import cgroup2_mount

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

ZONE = [
    "host-record=plain.test,127.0.2.1",
    f"host-record=six.test,{IPV6_ADDRESS}",
    "host-record=edge.cdn.test,127.0.2.2",
    "cname=mid.shop.test,edge.cdn.test",
    "cname=www.shop.test,mid.shop.test",
    "host-record=short.test,127.0.2.3,2",  # a 2-second TTL
    "host-record=a.scope.test,127.0.3.1",
    "host-record=b.scope.test,127.0.3.1",
]
SHOP_CHAIN = ["www.shop.test", "mid.shop.test", "edge.cdn.test"]


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[str]:
    with dns_netns(ZONE, tmp_path) as name:
        yield name


def outgoing_names(events: list[dict[str, Any]], port: int) -> list[tuple[str, list[str]]]:
    """(dst, dst_dns) of each outgoing begin event to ``port``, in order."""
    return [
        (e["data"]["dst"], e["data"]["dst_dns"])
        for e in events
        if e["name"] == "net_flow_tcp_begin"
        and e["data"]["dst_port"] == port
        and e["data"]["conn_direction"] == "outgoing"
    ]


@pytest.mark.parametrize("server", [SERVER, SERVER6], ids=["dns-over-ipv4", "dns-over-ipv6"])
@pytest.mark.parametrize("transport", [(), ("+tcp",)], ids=["udp", "tcp"])
def test_dig_then_curl_names_a_b_and_cname_chain(
    tmp_path: Path, netns: str, transport: tuple[str, ...], server: str
) -> None:
    with (
        http_server("::", netns=netns) as port,
        no_syncookies(netns),
        Hostcore(tmp_path) as hostcore,
    ):
        assert dig(netns, "plain.test", *transport, server=server) == ["127.0.2.1"]
        curl(f"http://127.0.2.1:{port}/", netns=netns)
        assert dig(netns, "six.test", "AAAA", *transport, server=server) == [IPV6_ADDRESS]
        curl(f"http://[{IPV6_ADDRESS}]:{port}/", netns=netns)
        assert dig(netns, "www.shop.test", *transport, server=server)[-1] == "127.0.2.2"
        curl(f"http://127.0.2.2:{port}/", netns=netns)
        events = hostcore.stop()
    assert outgoing_names(events, port) == [
        ("127.0.2.1", ["plain.test"]),
        (IPV6_ADDRESS, ["six.test"]),
        ("127.0.2.2", SHOP_CHAIN),
    ]
    incoming = [
        tuple(e["data"]["dst_dns"])
        for e in events
        if e["name"] == "net_flow_tcp_begin"
        and e["data"]["conn_direction"] == "incoming"
        and e["data"]["dst_port"] == port
    ]
    assert Counter(incoming) == Counter([("plain.test",), ("six.test",), tuple(SHOP_CHAIN)])
    totals = hostcore.log("totals")
    assert totals["dns.answers"] == 3  # each answer once, though the probe saw it twice
    assert totals["dns.loopback_copies"] == 3
    assert "dns.malformed" not in str(totals)


def test_names_expire_with_their_ttl_unless_resolved_again(tmp_path: Path, netns: str) -> None:
    url = "http://127.0.2.3:{}/"
    with (
        http_server("::", netns=netns) as port,
        no_syncookies(netns),
        Hostcore(tmp_path) as hostcore,
    ):
        dig(netns, "short.test")
        answered = time.monotonic()
        curl(url.format(port), netns=netns)
        time.sleep(max(0.0, answered + 2.5 - time.monotonic()))  # the TTL is 2 s
        curl(url.format(port), netns=netns)
        dig(netns, "short.test")
        curl(url.format(port), netns=netns)
        events = hostcore.stop()
    assert [names for _, names in outgoing_names(events, port)] == [
        ["short.test"],
        [],
        ["short.test"],
    ]


def resolve_connect(netns: str, port: int, names: list[str], *options: str, **popen: Any):
    command = [sys.executable, str(TOOLS / "resolve_connect.py"), str(port), *names, *options]
    return subprocess.Popen(["ip", "netns", "exec", netns, *command], text=True, **popen)


def test_getaddrinfo_with_the_netns_resolv_conf(tmp_path: Path, netns: str) -> None:
    with (
        http_server("::", netns=netns) as port,
        no_syncookies(netns),
        Hostcore(tmp_path) as hostcore,
    ):
        client = resolve_connect(
            netns, port, ["www.shop.test", "plain.test", "six.test"], stdout=subprocess.PIPE
        )
        out, _ = client.communicate(timeout=60)
        assert client.returncode == 0
        events = hostcore.stop()
    assert [line.split()[3] for line in out.splitlines()] == ["127.0.2.2", "127.0.2.1", "fd00::2"]
    assert outgoing_names(events, port) == [
        ("127.0.2.2", SHOP_CHAIN),
        ("127.0.2.1", ["plain.test"]),
        (IPV6_ADDRESS, ["six.test"]),
    ]


ORDERING_NAMES = 500


def test_resolve_then_connect_at_once_always_carries_the_name(tmp_path: Path) -> None:
    """Every name and address is fresh, so only this very answer can name the connection."""
    addresses = {
        f"n{i}.order.test": f"127.1.{i // 250}.{i % 250 + 1}" for i in range(ORDERING_NAMES)
    }
    assert len(set(addresses.values())) == ORDERING_NAMES
    zone = [f"host-record={name},{address}" for name, address in addresses.items()]
    with (
        dns_netns(zone, tmp_path) as netns,
        http_server("::", netns=netns) as port,
        no_syncookies(netns),
        Hostcore(tmp_path) as hostcore,
    ):
        client = resolve_connect(netns, port, list(addresses), stdout=subprocess.PIPE)
        out, _ = client.communicate(timeout=300)
        assert client.returncode == 0
        events = hostcore.stop()
    assert len(out.splitlines()) == ORDERING_NAMES
    expected = Counter((address, (name,)) for name, address in addresses.items())
    seen = Counter((dst, tuple(names)) for dst, names in outgoing_names(events, port))
    assert seen == expected


@pytest.fixture
def two_cgroups() -> Iterator[tuple[Path, Path]]:
    paths = tuple(cgroup2_mount() / f"hostcore-dns-{name}-{os.getpid()}" for name in "ab")
    for path in paths:
        path.mkdir(exist_ok=True)  # left over only if a run was killed; empty then
    try:
        yield paths  # type: ignore[misc]
    finally:
        for path in paths:
            path.rmdir()  # the test waits for its clients, so the cgroups are empty


def _in_cgroup(netns: str, cgroup: Path, port: int, name: str) -> subprocess.Popen[str]:
    command = [sys.executable, str(TOOLS / "resolve_connect.py"), str(port), name, "--wait"]
    return subprocess.Popen(
        in_place(command, netns, cgroup),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("scope", "a_names", "b_names"),
    [
        ("cgroup", ["a.scope.test", "b.scope.test"], ["b.scope.test", "a.scope.test"]),
        ("host", ["b.scope.test", "a.scope.test"], ["b.scope.test", "a.scope.test"]),
    ],
)
def test_each_cgroup_sees_its_own_name_first(
    tmp_path: Path,
    netns: str,
    two_cgroups: tuple[Path, Path],
    scope: str,
    a_names: list[str],
    b_names: list[str],
) -> None:
    """a resolves, then b resolves the same address under another name, then both connect."""
    config = tmp_path / "hostcore.toml"
    config.write_text(f'[dns]\nscope = "{scope}"\n')
    with (
        http_server("::", netns=netns) as port,
        no_syncookies(netns),
        Hostcore(tmp_path, ["--config", str(config)]) as hostcore,
    ):
        clients: list[subprocess.Popen[str]] = []
        try:
            for cgroup, name in zip(two_cgroups, ["a.scope.test", "b.scope.test"], strict=True):
                clients.append(_in_cgroup(netns, cgroup, port, name))
                stdout = clients[-1].stdout
                assert stdout is not None and stdout.readline() == "resolved\n"
            lines = [client.communicate("go\n", timeout=60)[0] for client in clients]
        finally:
            for client in clients:
                client.kill()
                client.wait()
        events = hostcore.stop()
    client_ports = [int(line.split()[2]) for line in lines]
    by_port = {
        e["data"]["src_port"]: e["data"]["dst_dns"]
        for e in events
        if e["name"] == "net_flow_tcp_begin"
        and e["data"]["conn_direction"] == "outgoing"
        and e["data"]["dst_port"] == port
    }
    assert [by_port[p] for p in client_ports] == [a_names, b_names]


def _send_answers(netns: str, client_port: int, messages: list[bytes]) -> None:
    """Send datagrams from port 53 of another loopback address, the way a resolver answers."""
    script = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind(('127.0.0.54', 53))\n"
        "for hex_message in sys.argv[2:]:\n"
        "    s.sendto(bytes.fromhex(hex_message), ('127.0.0.1', int(sys.argv[1])))\n"
    )
    command = [sys.executable, "-c", script, str(client_port), *(m.hex() for m in messages)]
    subprocess.run(["ip", "netns", "exec", netns, *command], check=True)


def test_malformed_and_oversized_answers_are_counted_and_harm_nothing(
    tmp_path: Path, netns: str
) -> None:
    from dns_messages import answer

    good = answer("good.test.", ("good.test.", 60, "A", "127.0.2.1"))
    loop = good[:12] + b"\xc0\x0c" + good[14:]  # the question name points at itself
    count_too_big = good[:6] + b"\x00\x09" + good[8:]  # 9 answers announced, 1 present
    label_overflow = good[:12] + b"\x41" + good[13:]  # a 65-byte label
    huge = answer(
        "big.test.", *[("big.test.", 60, "A", f"10.9.{i >> 8}.{i & 255}") for i in range(200)]
    )
    assert len(huge) > 2048  # beyond what the probe passes up
    receiver = ["ip", "netns", "exec", netns, sys.executable, "-c",
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "s.bind(('127.0.0.1', 0))\nprint(s.getsockname()[1], flush=True)\n"
                "for _ in range(5): s.recv(65535)\nprint('done', flush=True)\n"]  # fmt: skip
    with (
        http_server("::", netns=netns) as port,
        no_syncookies(netns),
        Hostcore(tmp_path) as hostcore,
    ):
        with subprocess.Popen(receiver, stdout=subprocess.PIPE, text=True) as client:
            assert client.stdout is not None
            client_port = int(client.stdout.readline())
            _send_answers(netns, client_port, [loop, count_too_big, label_overflow, huge, good])
            assert client.stdout.readline() == "done\n"
        curl(f"http://127.0.2.1:{port}/", netns=netns)
        events = hostcore.stop()
    totals = hostcore.log("totals")
    expected = {
        "dns.malformed.forward_pointer": 1,
        "dns.malformed.truncated_name": 1,
        "dns.malformed.bad_label_type": 1,
        "dns.truncated": 1,
    }
    assert {k: v for k, v in totals.items() if k.startswith(("dns.malformed", "dns.trunc"))} == (
        expected
    )
    assert outgoing_names(events, port) == [("127.0.2.1", ["good.test"])]
    lost = [e["data"]["lost"] for e in events if e["name"] == "lost_events"]
    assert sum(map(Counter, lost), Counter()) == expected  # each loss reported in the stream
