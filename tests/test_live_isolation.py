"""Failing sinks and handlers are isolated, counted and reported; a closed stdout ends a run."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from support import (
    HOSTCORE,
    AcceptServer,
    Hostcore,
    both_ends,
    connect_once,
    fake_distribution,
    flows,
    hostcore_programs,
    no_syncookies,
)

from hostcore.cgroup import cgroup2_mount

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

FAILING_PLUGINS = """
from hostcore import EventSpec, PacketKind, SinkSpec, hookimpl


class Broken:
    def write(self, packed, event):
        raise OSError("collector unreachable")

    def flush(self):
        pass

    def close(self):
        pass


class Raises:
    def __init__(self, context):
        pass

    def handle(self, packets, emit):
        raise ZeroDivisionError("plugin bug")


@hookimpl
def hostcore_register_sinks(register):
    register(SinkSpec(name="broken", open=lambda options: Broken()))


@hookimpl
def hostcore_register_events(register):
    register(EventSpec(name="raises", id=9100, fields=(), sets=("faulty",),
                       depends_on="net_packet_flow_base", needs=PacketKind.TCP_SYN_ACK,
                       handler=Raises))
"""


def test_failing_sink_and_handler_do_not_stop_the_others(tmp_path: Path) -> None:
    fake_distribution(tmp_path, "faulty", FAILING_PLUGINS)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    args = ["--events", "flows,faulty", "--sink", "broken"]
    with (
        AcceptServer() as server,
        no_syncookies(),
        Hostcore(tmp_path, args, env=env) as hostcore,
    ):
        clients = [connect_once("127.0.0.1", server.port) for _ in range(10)]
        events = hostcore.stop()
    expected = Counter(f for c in clients for f in both_ends(*c, "127.0.0.1", server.port))
    assert flows(events, {server.port}) == expected  # the file sink got every begin event
    totals = hostcore.log("totals")
    flow_events = totals["events.net_flow_tcp_begin"] + totals["events.net_flow_tcp_end"]
    assert totals["sink_errors.broken"] >= flow_events  # every event it could not take, counted
    assert totals["plugin_errors.raises"] >= len(clients) * 2  # packets the bad handler lost
    reported: Counter[str] = Counter()
    for event in events:
        if event["name"] == "lost_events":
            reported.update(event["data"]["lost"])
    assert reported["plugin_errors.raises"] == totals["plugin_errors.raises"]
    # Every flow event's failed write is reported; the markers' own failed writes are not.
    assert reported["sink_errors.broken"] == flow_events
    assert sum(1 for line in hostcore.stderr_lines if '"sink write failed"' in line) == 1


def test_closed_stdout_ends_the_run_cleanly(tmp_path: Path) -> None:
    """`hostcore run | head -1`: once the reader is gone, hostcore detaches and exits 0."""
    root = str(cgroup2_mount())
    before = hostcore_programs(root)
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [HOSTCORE, "run"], stdout=write_end, stderr=subprocess.PIPE, text=True
    )
    os.close(write_end)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if '"event": "ready"' in line:
                break
        with AcceptServer() as server:
            connect_once("127.0.0.1", server.port)
            with os.fdopen(read_end, "rb") as reader:
                assert reader.readline().startswith(b'{"v":1')
            for _ in range(5):  # writes now hit a closed pipe
                connect_once("127.0.0.1", server.port)
        stderr = process.stderr.read()
        assert process.wait(timeout=30) == 0, stderr
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
    assert '"event": "sink closed"' in stderr and '"event": "totals"' in stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    assert hostcore_programs(root) == before
