"""A sink's queue: what a batch it has no room for costs, and an event one encoding
cannot hold, each counted for the sinks they concern only."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from list_sink import ListSink

from hostcore.events import event_map
from hostcore.log import FailureLog
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.fanout import Fanout
from hostcore.pipeline.render import Renderer
from hostcore.sinks.base import Rendered
from hostcore.sinks.queue import QueuedSink


class _HeldAtFirstWrite:
    """A sink whose first write waits until the test lets it go."""

    def __init__(self) -> None:
        self.writing = threading.Event()
        self.go = threading.Event()
        self.written: list[bytes] = []

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        if not self.written:
            self.writing.set()
            assert self.go.wait(30), "the test never let the sink go"
        self.written.append(packed)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _rendered(n: int) -> Rendered:
    return f"event {n}".encode(), "", {"n": n}, False


def _no_marker(data: Mapping[str, Any]) -> Rendered:
    raise AssertionError(f"no loss was told, yet a marker was built: {data}")


def test_a_batch_past_the_queues_room_is_counted_dropped_and_the_rest_written() -> None:
    sink = _HeldAtFirstWrite()
    queued = QueuedSink("held", sink, "msgpack", 3, _no_marker, FailureLog())
    queued.put([_rendered(0)])
    assert sink.writing.wait(30), "the sink's thread never wrote"
    queued.put([_rendered(n) for n in range(1, 6)])  # room for 3 of these 5
    sink.go.set()
    queued.stop()
    queued.join(time.monotonic() + 30)
    assert sink.written == [f"event {n}".encode() for n in range(4)]
    assert queued.counters() == {"sink_drops.held": 2}


def test_an_event_json_cannot_hold_is_lost_to_the_json_sink_alone() -> None:
    accounting = Accounting(0)
    fanout = Fanout(Renderer("hostcore", []), "h", accounting, FailureLog())
    as_msgpack, as_json = ListSink(), _JsonLines()
    fanout.start({"msgpack": as_msgpack, "json": as_json}, {}, waits=False)
    fanout.send(event_map("e", 1, 5, "h", {}, {"raw": b"\xff"}))  # bytes: no JSON for them
    fanout.send(event_map("e", 1, 6, "h", {}, {"raw": "text"}))
    fanout.close()
    sent = [event for event in as_msgpack.events if event["name"] == "e"]
    assert [event["timestamp"] for event in sent] == [5, 6]
    assert [line for line in as_json.lines if '"name":"e"' in line] == [
        '{"v":1,"name":"e","id":1,"timestamp":6,"host":"h","context":{},"data":{"raw":"text"}}\n'
    ]
    assert accounting.unreported_losses() == {} and accounting.counters == {"sink_errors.json": 1}


class _JsonLines:
    encoding = "json"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str, event: Mapping[str, Any]) -> None:
        self.lines.append(line)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
