"""Loss accounting end to end: what the kernel could not queue is counted exactly and told
to every sink, so that delivered + lost adds up to what happened."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_scrape import scrape
from runs import Hostcore
from traffic import burst, free_port, no_syncookies
from waiting import wait_until

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

BURST = 5000  # connections; each gives two SYN+ACK records (one leaving, one arriving)
# One page of ring buffer (about 15 SYN+ACK records), drained every 20 ms: a burst overflows it.
TINY_RING = "ring_buffer_kib = 4\npoll_interval_ms = 20\n"


def accounted(samples: dict[tuple[str, str], float], syn_acks: int) -> dict[str, float] | None:
    """Delivered and lost SYN+ACKs as scraped, once they add up to ``syn_acks``."""
    delivered = samples.get(("hostcore_counter", "events.net_flow_tcp_begin"), 0)
    lost = samples.get(("hostcore_lost", "kernel_reserve_failures"), 0)
    return {"delivered": delivered, "lost": lost} if delivered + lost == syn_acks else None


def lost_markers(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event["data"] for event in events if event["name"] == "lost_events"]


def stdout_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tiny_ring_every_syn_ack_is_delivered_or_counted_lost(
    tmp_path: Path, child_cgroup: Path
) -> None:
    config = tmp_path / "hostcore.toml"
    config.write_text(TINY_RING)
    stdout = tmp_path / "stdout.jsonl"
    args = ["--config", str(config), "--cgroup", child_cgroup.name, "--sink", "stdout"]
    metrics = f"127.0.0.1:{free_port()}"
    args += ["--events", "net_flow_tcp_begin", "--monitor", f"prometheus:listen={metrics}"]
    # The probe sees only the burst's sockets: both ends are in the cgroup it is attached to.
    with no_syncookies(), Hostcore(tmp_path, args, stdout_path=stdout) as hostcore:
        completed, port = burst(child_cgroup, BURST)
        # Users see the same accounting live, on the Prometheus endpoint.
        live = wait_until(
            lambda: accounted(scrape(f"http://{metrics}/metrics"), 2 * completed),
            "the endpoint to account for every SYN+ACK",
        )
        file_events = hostcore.stop()
    assert completed == BURST
    totals = hostcore.log("totals")
    delivered = totals.get("events.net_flow_tcp_begin", 0)
    lost = totals.get("kernel_reserve_failures", 0)
    assert live == {"delivered": delivered, "lost": lost}
    assert delivered > 0 and lost > 0, totals  # the ring overflowed, and was drained
    assert delivered + lost == 2 * completed, totals
    assert totals.get("net_flow_tcp_begin.duplicate_syn_acks", 0) == 0
    assert totals["records"] == delivered  # nothing else was passed up, nothing undecoded
    # Every sink is told, in the stream, of every record the kernel dropped.
    for events in (file_events, stdout_events(stdout)):
        markers = lost_markers(events)
        assert sum(marker["lost"]["kernel_reserve_failures"] for marker in markers) == lost
        assert all(marker["total"] == sum(marker["lost"].values()) for marker in markers)
        for earlier, later in itertools.pairwise(markers):
            assert earlier["interval_end"] == later["interval_start"]
        begins = Counter(e["data"]["dst_port"] for e in events if e["name"] != "lost_events")
        assert begins == Counter({port: delivered})
    assert lost_markers(file_events) == lost_markers(stdout_events(stdout))
