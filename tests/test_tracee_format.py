"""The Tracee output format, compared field by field with a real Tracee event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hostcore_net_flow import begin, end
from list_sink import ListSink
from runs import one_connection_on_stdout
from tracee_sample import NET_FLOW_TCP_FIELDS, NET_PACKET_TCP

from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.pipeline import Pipeline, PipelineOptions

SAMPLE: dict[str, Any] = json.loads(NET_PACKET_TCP)
# Go omits an empty matchedPolicies (omitempty); hostcore has no policies.
ABSENT = {"matchedPolicies"}


def assert_like_tracee(rendered: dict[str, Any]) -> None:
    """Tracee's keys in Tracee's order, each holding a value of the JSON type Tracee gives it."""
    assert list(rendered) == [key for key in SAMPLE if key not in ABSENT]
    for key, value in rendered.items():
        if key == "stackAddresses":  # a nil Go slice: null, as Tracee prints it without stacks
            assert value is None
        else:
            assert type(value) is type(SAMPLE[key]), key
    for key in ("executable", "contextFlags"):
        assert {k: type(v) for k, v in rendered[key].items()} == {
            k: type(v) for k, v in SAMPLE[key].items()
        }
    assert rendered["eventId"].isdigit() and SAMPLE["eventId"].isdigit()
    assert rendered["argsNum"] == len(rendered["args"])
    for arg in rendered["args"]:
        assert list(arg) == list(SAMPLE["args"][0])


def test_published_events_render_like_tracee() -> None:
    sink = ListSink()
    options = PipelineOptions(host="node-1", output_format="tracee")
    pipeline = Pipeline([begin.SPEC, end.SPEC], [], Accounting(0), options)
    pipeline.start({"list": sink})
    context = {
        "pid": 41,
        "tid": 42,
        "comm": "curl",
        "uid": 1000,
        "cgroup_id": 7,
        "container_id": "ab" * 32,
        "owner": "connected",
    }
    data = {
        "conn_direction": "outgoing",
        "src": "192.0.2.1",
        "dst": "198.51.100.2",
        "src_port": 40000,
        "dst_port": 443,
        "src_dns": [],
        "dst_dns": ["www.example.test"],
        "closed_by": "local",
        "closed_with": "fin",
        "begin": "seen",
        "duration_ns": 5,
    }
    pipeline.publish("net_flow_tcp_end", 2013, 1_795_830_000_123_456_789, data, context)
    pipeline.drain()  # the sink's thread has written what it was given
    [event] = sink.events
    assert_like_tracee(event)
    assert {k: event[k] for k in ("timestamp", "eventId", "eventName", "hostName")} == {
        "timestamp": 1_795_830_000_123_456_789,
        "eventId": "2014",  # Tracee's own id for net_flow_tcp_end (hostcore's is 2013)
        "eventName": "net_flow_tcp_end",
        "hostName": "node-1",
    }
    assert (event["processId"], event["hostProcessId"], event["threadId"]) == (41, 41, 42)
    assert (event["userId"], event["processName"], event["cgroupId"]) == (1000, "curl", 7)
    assert event["container"] == {"id": "ab" * 32} and event["containerId"] == "ab" * 32
    assert event["contextFlags"] == {"containerStarted": True, "isCompat": False}
    args = [(arg["name"], arg["type"]) for arg in event["args"]]
    assert args[:7] == NET_FLOW_TCP_FIELDS  # Tracee's own declaration of these fields
    assert [arg["value"] for arg in event["args"]] == list(data.values())


def test_unknown_context_and_the_core_lost_events() -> None:
    sink = ListSink()
    options = PipelineOptions(host="node-1", output_format="tracee")
    pipeline = Pipeline([], [], Accounting(0), options)
    pipeline.start({"list": sink})
    lost = {"lost": {"kernel_reserve_failures": 3}, "total": 3}
    pipeline.publish("lost_events", 1, 10, lost)
    pipeline.drain()
    [event] = sink.events
    assert_like_tracee(event)
    assert (event["processId"], event["processName"], event["container"]) == (0, "", {})
    assert event["eventId"] == "1000001"  # not Tracee's 1 (its write syscall)
    assert event["args"] == [
        {"name": "lost", "type": "map[string]int64", "value": {"kernel_reserve_failures": 3}},
        {"name": "total", "type": "int64", "value": 3},
    ]


@pytest.mark.live
@pytest.mark.usefixtures("root")
def test_hostcore_run_format_tracee_prints_tracee_json_lines() -> None:
    run = one_connection_on_stdout(["--format", "tracee", "--events", "flows"])
    ports = {run.client[1], run.server_port}
    ours = [e for e in run.lines if {arg["value"] for arg in e["args"][3:5]} == ports]
    names = ["net_flow_tcp_begin"] * 2 + ["net_flow_tcp_end"] * 2
    assert sorted(e["eventName"] for e in ours) == names
    for event in ours:
        assert_like_tracee(event)
        assert [(a["name"], a["type"]) for a in event["args"]][:7] == NET_FLOW_TCP_FIELDS
        assert event["hostProcessId"] > 0 and event["processName"]
