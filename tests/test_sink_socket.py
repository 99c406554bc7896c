"""The socket sink against a real collector process that is killed and restarted mid-stream."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from hostcore.options import OptionError, parse_address
from hostcore.testing import KIT_EVENT_NAME, Collector, SinkHost, reported_losses, synthetic_events

MakeHost = Callable[..., SinkHost]


def seqs(events: list[dict[str, Any]]) -> Counter[int]:
    return Counter(e["data"]["seq"] for e in events if e["name"] == KIT_EVENT_NAME)


def test_restarted_collector_gets_everything_within_the_queue(
    sink_host: MakeHost, msgpack_collector: Collector
) -> None:
    host = sink_host({"socket": {"address": msgpack_collector.address, "queue_size": "1000"}})
    flows = list(synthetic_events(900))
    for data in flows[:300]:
        host.emit(data)
    msgpack_collector.wait_for(300)  # read: what a killed collector had not read is lost
    msgpack_collector.kill()
    for data in flows[300:600]:  # collector down: held in the sink's queue
        host.emit(data)
    msgpack_collector.start()
    for data in flows[600:]:
        host.emit(data)
    events = msgpack_collector.wait_for(900)
    totals = host.close()
    assert seqs(events) == Counter(range(900))  # each exactly once, none lost
    assert not [name for name in totals if name.startswith(("sink_drops", "sink_undelivered"))]
    assert "lost_events" not in {e["name"] for e in events}


def test_beyond_the_queue_drops_are_counted_and_reported_to_the_collector(
    sink_host: MakeHost, tmp_path: Any
) -> None:
    collector = Collector("127.0.0.1:0", tmp_path / "collected.msgpack").start()
    try:
        options = {"address": collector.address, "queue_size": "100", "max_backoff_s": "0.1"}
        host = sink_host({"socket": options})
        flows = list(synthetic_events(600))
        for data in flows[:100]:
            host.emit(data)
        collector.wait_for(100)
        collector.kill()
        for data in flows[100:]:  # 500 while down: one in the sink's hand, 100 queued
            host.emit(data)
        collector.start()
        totals = host.close()  # reports the drops, then drains the queue to the collector
        drops = totals["sink_drops.socket"]
        events = collector.wait_for(600 - drops + 1)  # and the lost_events marker
    finally:
        collector.kill()
    # 100 queued, and one more if the sink's thread took the first before the queue filled.
    assert drops in (399, 400)
    assert seqs(events) == Counter(range(600 - drops))  # the oldest kept, each once
    assert reported_losses(events) == {"sink_drops.socket": drops}  # the collector is told


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unix:/run/c.sock", (1, "/run/c.sock")),
        ("127.0.0.1:24000", (2, ("127.0.0.1", 24000))),
        ("[::1]:24000", (10, ("::1", 24000))),
    ],
)
def test_addresses(text: str, expected: tuple[int, Any]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["unix:", "host", "host:port", ":80", "h:70000"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(OptionError, match="address"):
        parse_address(text)
