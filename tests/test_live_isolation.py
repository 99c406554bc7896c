"""Failing sinks and handlers are isolated, counted and reported; a closed stdout ends a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bpf_programs import hostcore_programs
from fake_distributions import fake_distribution
from runs import HOSTCORE, Hostcore, both_ends, flows, read_events
from traffic import AcceptServer, burst, connect_once, no_syncookies

from hostcore.probe.cgroup import cgroup2_mount
from hostcore.testing import reported_losses

# Paced so that batches (one per 10 ms poll) are small: some hold no third packet.
CONNECTIONS, RATE = 400, 100

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

FAILING_PLUGINS = """
import time

from hostcore import EventSpec, PacketKind, SinkSpec, hookimpl


class Broken:
    def write(self, packed, event):
        raise OSError("collector unreachable")

    def flush(self):
        pass

    def close(self):
        pass


class Slow:
    # Takes 1 s per event; records the name of each event it took.

    def __init__(self, path):
        self.file = open(path, "a")

    def write(self, packed, event):
        time.sleep(1)
        self.file.write(event["name"] + "\\n")
        self.file.flush()

    def flush(self):
        pass

    def close(self):
        self.file.close()


class Raises:
    def __init__(self, context):
        pass

    @hookimpl
    def hostcore_packets(self, packets):
        raise ZeroDivisionError("plugin bug")


@hookimpl
def hostcore_register_sinks(register):
    register(SinkSpec(name="broken", open=lambda options: Broken()))
    register(SinkSpec(name="slow", open=lambda options: Slow(options["path"]),
                      options={"path": "where it records what it took"}))


@hookimpl
def hostcore_register_events(register):
    register(EventSpec(name="raises", id=9100, fields=(), sets=("faulty",),
                       depends_on="net_packet_flow_base", needs=PacketKind.TCP_SYN_ACK,
                       handler=Raises))
"""


def run_with_faulty_plugins(
    tmp_path: Path, args: list[str], connections: int
) -> tuple[list[dict[str, Any]], Hostcore]:
    """Run hostcore (a file sink, and ``args``) over ``connections`` loopback connections
    with the plugins above installed; checks that capture and the file sink were exact."""
    fake_distribution(tmp_path, "faulty", FAILING_PLUGINS)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with AcceptServer() as server, no_syncookies(), Hostcore(tmp_path, args, env=env) as hostcore:
        clients = [connect_once("127.0.0.1", server.port) for _ in range(connections)]
        events = hostcore.stop()
    expected = Counter(f for c in clients for f in both_ends(*c, "127.0.0.1", server.port))
    assert flows(events, {server.port}) == expected  # the file sink got every begin event
    return events, hostcore


def published_events(totals: dict[str, int]) -> int:
    """Events of any name the run published (lost_events markers aside)."""
    return sum(n for name, n in totals.items() if name.startswith("events."))


def test_failing_sink_and_handler_do_not_stop_the_others(tmp_path: Path) -> None:
    args = ["--events", "flows,faulty", "--sink", "broken"]
    events, hostcore = run_with_faulty_plugins(tmp_path, args, connections=10)
    totals = hostcore.log("totals")
    flow_events = totals["events.net_flow_tcp_begin"] + totals["events.net_flow_tcp_end"]
    assert totals["sink_errors.broken"] >= flow_events  # every event it could not take, counted
    assert totals["plugin_errors.raises"] >= 10 * 2  # packets the bad handler lost
    reported = reported_losses(events)
    assert reported["plugin_errors.raises"] == totals["plugin_errors.raises"]
    # Every flow event's failed write is reported; the markers' own failed writes are not.
    assert reported["sink_errors.broken"] == flow_events
    assert sum(1 for line in hostcore.stderr_lines if '"sink write failed"' in line) == 1


def test_slow_and_raising_sinks_do_not_stall_capture_or_the_file_sink(tmp_path: Path) -> None:
    took = tmp_path / "slow.txt"
    config = tmp_path / "hostcore.toml"
    config.write_text("sink_drain_timeout_s = 60\n")  # the slow sink drains its 3 at exit
    slow = f"slow:path={took},queue_size=3"
    args = ["--config", str(config), "--sink", slow, "--sink", "broken"]
    events, hostcore = run_with_faulty_plugins(tmp_path, args, connections=20)
    totals = hostcore.log("totals")
    published = published_events(totals)
    taken = Counter(took.read_text().splitlines())
    drops = totals["sink_drops.slow"]
    assert drops > 0 and "sink_undelivered.slow" not in totals
    # Each event taken or counted dropped (lost_events markers are never dropped).
    assert taken.total() - taken["lost_events"] + drops == published
    assert totals["sink_errors.broken"] == published  # each of its failed writes counted
    # Every sink is told of the slow sink's drops: the slow one too, once it had room.
    assert reported_losses(events)["sink_drops.slow"] == drops
    slow_markers = taken["lost_events"]
    assert 0 < slow_markers <= sum(1 for e in events if e["name"] == "lost_events")
    failed_writes = sum(1 for line in hostcore.stderr_lines if '"sink write failed"' in line)
    assert failed_writes == 1  # logged once a minute, not once per event


def test_a_stuck_sink_is_abandoned_at_exit_and_what_it_held_counted(tmp_path: Path) -> None:
    took = tmp_path / "slow.txt"
    config = tmp_path / "hostcore.toml"
    config.write_text("sink_drain_timeout_s = 0.5\n")
    args = ["--config", str(config), "--sink", f"slow:path={took}"]
    _, hostcore = run_with_faulty_plugins(tmp_path, args, connections=5)
    totals = hostcore.log("totals")
    taken = len(took.read_text().splitlines())
    undelivered = totals["sink_undelivered.slow"]
    assert undelivered > 0 and "sink_drops.slow" not in totals
    assert taken + undelivered == published_events(totals)
    stuck = [log for log in hostcore.logs if log["event"] == "sink did not drain in time"]
    assert [(log["sink"], log["undelivered"]) for log in stuck] == [("slow", undelivered)]


EVERY_THIRD = """
from hostcore import EventSpec, Field, PacketKind, hookimpl


class EveryThird:
    # Raises on each batch holding a third packet, before emitting any of the batch.
    def __init__(self, context):
        self.seen = 0
        self.emit = context.emit

    @hookimpl
    def hostcore_packets(self, packets):
        first, self.seen = self.seen + 1, self.seen + len(packets)
        if any(number % 3 == 0 for number in range(first, self.seen + 1)):
            raise RuntimeError("every third packet")
        for packet in packets:
            self.emit(packet.timestamp_ns, {"src_port": packet.src_port}, packet)


@hookimpl
def hostcore_register_events(register):
    register(EventSpec(name="every_third", id=9102, fields=(Field("src_port", "uint16"),),
                       sets=("thirds",), depends_on="net_packet_flow_base",
                       needs=PacketKind.TCP_SYN_ACK, handler=EveryThird))
"""


@pytest.fixture
def full_disk(root: None, tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a few hundred events fill it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_raising_plugin_and_full_disk_sink_are_counted_exactly(
    tmp_path: Path, child_cgroup: Path, full_disk: Path
) -> None:
    fake_distribution(tmp_path, "thirds", EVERY_THIRD)
    stdout = tmp_path / "stdout.jsonl"
    on_disk = full_disk / "events.msgpack"
    args = ["--cgroup", child_cgroup.name, "--events", "flows,thirds"]
    args += ["--sink", "stdout", "--sink", f"file:path={on_disk}"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with (
        no_syncookies(),
        Hostcore(tmp_path, args, env, cli_sink=False, stdout_path=stdout) as hostcore,
    ):
        completed, port = burst(child_cgroup, CONNECTIONS, RATE)
        hostcore.stop()
    totals = hostcore.log("totals")
    published = [json.loads(line) for line in stdout.read_text().splitlines()]
    kept = read_events(on_disk)  # whole events only: the stream reads to its end
    # The stdout sink got every begin event: two per connection.
    begins = Counter(e["data"]["dst_port"] for e in published if e["name"] == "net_flow_tcp_begin")
    assert begins == Counter({port: 2 * completed})
    # Each of the plugin's packets is an event or counted lost; each event the disk missed too.
    assert totals["events.every_third"] + totals["plugin_errors.every_third"] == 2 * completed
    assert totals["plugin_errors.every_third"] > 0 and totals["sink_errors.file"] > 0
    assert len(kept) + totals["sink_errors.file"] == len(published)
    # lost_events told stdout all of it, but for what the disk's last writes lost (its queue's
    # thread finds that out after the last report: it is in the totals); that is only markers.
    reported: Counter[str] = Counter()
    for event in published:
        if event["name"] == "lost_events":
            reported.update(event["data"]["lost"])
    assert reported["plugin_errors.every_third"] == totals["plugin_errors.every_third"]
    markers_missed = sum(e["name"] == "lost_events" for e in published) - sum(
        e["name"] == "lost_events" for e in kept
    )
    unreported = totals["sink_errors.file"] - reported["sink_errors.file"]
    assert 0 <= unreported <= markers_missed


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
