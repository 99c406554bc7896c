"""community_id on flow events: the specification's published vectors, and an independent
implementation (the communityid package) over every flow event of the replay corpus."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import communityid
import pytest
import tshark_oracle
from capture_tools import replay
from hostcore_net_flow.community_id import community_id

# baseline/baseline_deflt.json of github.com/corelight/community-id-spec: the TCP and UDP
# flows, seed 0, given both ways round.
SPEC_VECTORS = [
    (6, "128.232.110.120", "66.35.250.204", 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (6, "66.35.250.204", "128.232.110.120", 80, 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (
        6,
        "2001:470:e5bf:dead:4957:2174:e82c:4887",
        "2607:f8b0:400c:c03::1a",
        63943,
        25,
        "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
    ),
    (
        6,
        "2607:f8b0:400c:c03::1a",
        "2001:470:e5bf:dead:4957:2174:e82c:4887",
        25,
        63943,
        "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
    ),
    (17, "192.168.1.52", "8.8.8.8", 54585, 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (17, "8.8.8.8", "192.168.1.52", 53, 54585, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
]
FLOW_EVENTS = ("net_flow_tcp_begin", "net_flow_tcp_end", "net_flow_tcp_failed")


@pytest.mark.parametrize(
    ("protocol", "src", "dst", "src_port", "dst_port", "expected"), SPEC_VECTORS
)
def test_the_specification_s_vectors(
    protocol: int, src: str, dst: str, src_port: int, dst_port: int, expected: str
) -> None:
    assert community_id(src, dst, src_port, dst_port, protocol) == expected


def test_every_flow_event_of_the_corpus_agrees_with_an_independent_implementation(
    tmp_path: Path,
) -> None:
    files = sorted(str(p) for p in tshark_oracle.CORPUS.glob("*.pcap*"))
    events = replay(tmp_path, *files, "--events", "network_events")
    independent = communityid.CommunityID()
    checked: Counter[str] = Counter()
    for event in events:
        if event["name"] not in FLOW_EVENTS:
            continue
        data = event["data"]
        flow = communityid.FlowTuple.make_tcp(
            data["src"], data["dst"], data["src_port"], data["dst_port"]
        )
        assert data["community_id"] == independent.calc(flow), data
        checked[event["name"]] += 1
    assert set(checked) == set(FLOW_EVENTS)
    assert sum(checked.values()) > 500, checked


@pytest.mark.parametrize(
    ("src", "dst", "src_port", "dst_port"),
    [
        ("127.0.0.1", "127.0.0.1", 55182, 35813),  # one address: the ports decide the order
        ("127.0.0.1", "127.0.0.1", 35813, 55182),
        ("::1", "::1", 40000, 443),
        ("::ffff:192.0.2.1", "2001:db8::1", 1, 65535),
    ],
)
def test_endpoints_on_one_address_and_mixed_forms_agree_with_the_package(
    src: str, dst: str, src_port: int, dst_port: int
) -> None:
    flow = communityid.FlowTuple.make_tcp(src, dst, src_port, dst_port)
    assert community_id(src, dst, src_port, dst_port) == communityid.CommunityID().calc(flow)
