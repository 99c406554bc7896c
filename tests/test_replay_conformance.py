"""Replay every public capture in shared/pcaps and compare with tshark's dissection.

The oracle (tests/tshark_oracle.py) runs tshark in the test. The multiset of
begin events, keyed by endpoints and the first SYN+ACK's capture timestamp,
must equal the connections tshark finds (one per 4-tuple and client ISN);
directions must match wherever the capture records them; dst_dns must hold
the names of the unexpired DNS answers for the server seen earlier.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import msgpack
import pytest
import tshark_oracle

from hostcore import cli

CORPUS = Path(
    os.environ.get("HOSTCORE_PCAPS", Path(__file__).resolve().parents[2] / "shared" / "pcaps")
)
CAPTURES = sorted(p.name for p in CORPUS.glob("*.pcap*"))

# Differences from tshark that are accepted, by file and frame, and why.
EXCEPTIONS: dict[tuple[str, int], str] = {
    ("dpkt_nb6-http.pcap", 54): "IPv6 in PPP in L2TP (UDP 1701) in PPPoE: of tunnels, only "
    "6in4 is decoded; a host's own probe sees such traffic already unwrapped",
}


def test_the_corpus_is_there() -> None:
    assert len(CAPTURES) == 42, f"expected the 42 captures of shared/pcaps in {CORPUS}"


def _replay(path: Path, tmp_path: Path) -> list[dict[str, Any]]:
    out = tmp_path / "events.msgpack"
    assert (
        cli.main(
            ["replay", str(path), "--events", "net_flow_tcp_begin", "--sink", f"file:path={out}"]
        )
        == 0
    )
    with out.open("rb") as stream:
        return [
            event
            for event in msgpack.Unpacker(stream, raw=False)
            if event["name"] == "net_flow_tcp_begin"
        ]


@pytest.mark.parametrize("name", CAPTURES)
def test_replay_matches_tshark(name: str, tmp_path: Path) -> None:
    path = CORPUS / name
    expected = [
        begin for begin in tshark_oracle.begins(path) if (name, begin.frame) not in EXCEPTIONS
    ]
    events = _replay(path, tmp_path)
    flows = Counter(
        (
            e["data"]["src"],
            e["data"]["src_port"],
            e["data"]["dst"],
            e["data"]["dst_port"],
            e["timestamp"],
        )
        for e in events
    )
    assert flows == Counter(begin.flow for begin in expected)
    by_flow = {
        (
            e["data"]["src"],
            e["data"]["src_port"],
            e["data"]["dst"],
            e["data"]["dst_port"],
            e["timestamp"],
        ): e["data"]
        for e in events
    }
    for begin in expected:
        data = by_flow[begin.flow]
        if begin.direction is not None:
            assert data["conn_direction"] == begin.direction, begin
        assert set(data["dst_dns"]) == begin.dst_dns, begin
