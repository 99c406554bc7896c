"""Attach and detach: coexistence with other cgroup programs and agents, clean exit on signals."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from bpf_programs import HOSTCORE_PROGRAMS, attached_program_names, attached_programs, program_ids
from fake_distributions import fake_distribution
from runs import Hostcore, both_ends, flows
from traffic import TOOLS, AcceptServer, connect_once, curl, http_server, no_syncookies

from hostcore.probe.cgroup import cgroup2_mount

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

PROGRAMS = HOSTCORE_PROGRAMS
ROOT = str(cgroup2_mount())


def wait_until_gone(ids: set[int], timeout_s: float = 10) -> set[int]:
    """Poll bpftool until none of the programs ``ids`` is attached (the kernel may lag an
    exit); returns those still attached."""
    deadline = time.monotonic() + timeout_s
    while (left := ids & set(attached_programs(ROOT))) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_other_cgroup_program_attaches_beside_hostcore(tmp_path: Path, child_cgroup: Path) -> None:
    from bcc import BPF, BPFAttachType

    other = BPF(src_file=str(TOOLS / "count_packets.c").encode())
    program = other.load_func(b"count_egress", BPF.CGROUP_SKB)
    with http_server("127.0.0.1") as port, no_syncookies(), Hostcore(tmp_path) as hostcore:
        cgroup_fd = os.open(child_cgroup, os.O_RDONLY)
        try:
            # flags 0: the classic exclusive attach another tool would do, below our links
            BPF.attach_func(program, cgroup_fd, BPFAttachType.CGROUP_INET_EGRESS)
            client_ip, client_port, _, _ = curl(f"http://127.0.0.1:{port}/", cgroup=child_cgroup)
            names = attached_program_names(ROOT)
        finally:
            BPF.detach_func(program, cgroup_fd, BPFAttachType.CGROUP_INET_EGRESS)
            os.close(cgroup_fd)
        events = hostcore.stop()
    assert "count_egress" in names and set(names) >= PROGRAMS
    assert other[b"seen"][0].value > 0  # the other program ran
    assert flows(events, {port}) == Counter(both_ends(client_ip, client_port, "127.0.0.1", port))


def test_two_agents_side_by_side(tmp_path: Path) -> None:
    with (
        AcceptServer() as server,
        no_syncookies(),
        Hostcore(tmp_path) as first,
        Hostcore(tmp_path) as second,
    ):
        assert first.attached(ROOT) == second.attached(ROOT) == Counter(PROGRAMS)
        clients = [connect_once("127.0.0.1", server.port) for _ in range(10)]
        second_events = second.stop()
        first_events = first.stop()
    expected = Counter(f for c in clients for f in both_ends(*c, "127.0.0.1", server.port))
    assert flows(first_events, {server.port}) == expected
    assert flows(second_events, {server.port}) == expected


CRASHING_PLUGIN = """
import ctypes

from hostcore import EventSpec, PacketKind, hookimpl


class Crashes:
    def __init__(self, context):
        pass

    @hookimpl
    def hostcore_packets(self, packets):
        ctypes.string_at(0)  # a bug in native code: the interpreter dies of SIGSEGV


@hookimpl
def hostcore_register_events(register):
    register(EventSpec(name="crashes", id=9101, fields=(), sets=("crashing",),
                       depends_on="net_packet_flow_base", needs=PacketKind.TCP_SYN_ACK,
                       handler=Crashes))
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_program_left_attached_after_signal(tmp_path: Path, signum: int) -> None:
    with AcceptServer() as server, Hostcore(tmp_path) as hostcore:
        assert hostcore.process is not None
        assert hostcore.attached(ROOT) == Counter(PROGRAMS)
        ids = program_ids(hostcore.process.pid)
        client = connect_once("127.0.0.1", server.port)
        events = hostcore.stop(signum)
        assert wait_until_gone(ids) == set()
    if signum != signal.SIGKILL:  # an orderly exit flushes the sink and prints totals
        assert flows(events, {server.port}) == Counter(both_ends(*client, "127.0.0.1", server.port))
        assert hostcore.log("totals")["events.net_flow_tcp_begin"] >= 2


def test_cgroup_option_scopes_the_probe(tmp_path: Path, child_cgroup: Path) -> None:
    """Attached to a child cgroup, only sockets of processes inside it are seen."""
    with (
        http_server("127.0.0.1") as port,
        no_syncookies(),
        Hostcore(tmp_path, ["--cgroup", child_cgroup.name]) as hostcore,
    ):
        assert hostcore.log("ready")["cgroup"] == str(child_cgroup)
        client_ip, client_port, _, _ = curl(f"http://127.0.0.1:{port}/", cgroup=child_cgroup)
        outside = curl(f"http://127.0.0.1:{port}/")
        events = hostcore.stop()
    # The server is outside the cgroup: its socket's (incoming) event is not seen.
    assert flows(events, {port}) == Counter(
        [("outgoing", client_ip, "127.0.0.1", client_port, port)]
    )
    assert flows(events, {outside[1]}) == Counter()


def test_a_run_after_sigkill_mid_run_captures_correctly(tmp_path: Path) -> None:
    with AcceptServer() as server, no_syncookies():
        with Hostcore(tmp_path) as killed:
            assert killed.process is not None
            ids = program_ids(killed.process.pid)
            for _ in range(20):
                connect_once("127.0.0.1", server.port)
            killed.stop(signal.SIGKILL)  # in the middle of reading: nothing is drained
        assert ids and wait_until_gone(ids) == set()
        with Hostcore(tmp_path) as fresh:
            assert fresh.attached(ROOT) == Counter(PROGRAMS)
            clients = [connect_once("127.0.0.1", server.port) for _ in range(10)]
            events = fresh.stop()
    expected = Counter(f for c in clients for f in both_ends(*c, "127.0.0.1", server.port))
    assert flows(events, {server.port}) == expected


def test_a_plugin_crashing_one_run_leaves_nothing_and_spares_the_other(tmp_path: Path) -> None:
    """A segfault inside a plugin kills its run; the kernel detaches that run's programs and
    a second run, attached all along, goes on capturing every connection."""
    fake_distribution(tmp_path, "crashing", CRASHING_PLUGIN)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with (
        AcceptServer() as server,
        no_syncookies(),
        Hostcore(tmp_path) as survivor,
        Hostcore(tmp_path, ["--events", "flows,crashing"], env=env) as crashing,
    ):
        assert survivor.attached(ROOT) == crashing.attached(ROOT) == Counter(PROGRAMS)
        assert crashing.process is not None
        ids = program_ids(crashing.process.pid)
        clients = [connect_once("127.0.0.1", server.port)]
        assert crashing.process.wait(timeout=60) == -signal.SIGSEGV
        assert wait_until_gone(ids) == set()
        assert survivor.attached(ROOT) == Counter(PROGRAMS)
        clients += [connect_once("127.0.0.1", server.port) for _ in range(10)]
        events = survivor.stop()
    expected = Counter(f for c in clients for f in both_ends(*c, "127.0.0.1", server.port))
    assert flows(events, {server.port}) == expected
