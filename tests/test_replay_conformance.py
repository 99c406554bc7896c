"""Replay every public capture in tests/data/captures and compare with tshark's dissection.

The oracle (tests/tshark_oracle.py) runs tshark in the test. The multiset of
begin events, keyed by endpoints and the first SYN+ACK's capture timestamp,
must equal the connections tshark finds (one per 4-tuple and client ISN);
directions must match wherever the capture records them; dst_dns must hold
the names of the unexpired DNS answers for the server seen earlier.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tshark_oracle
from capture_tools import replay

CAPTURES = sorted(p.name for p in tshark_oracle.CORPUS.glob("*.pcap*"))

# Differences from tshark that are accepted, by file and frame, and why.
EXCEPTIONS: dict[tuple[str, int], str] = {
    ("dpkt_nb6-http.pcap", 54): "IPv6 in PPP in L2TP (UDP 1701) in PPPoE: of tunnels, only "
    "6in4 is decoded; a host's own probe sees such traffic already unwrapped",
}


def test_the_corpus_is_there() -> None:
    assert len(CAPTURES) == 42, f"expected the 42 captures of MANIFEST.md in {tshark_oracle.CORPUS}"


@pytest.mark.parametrize("name", CAPTURES)
def test_replay_matches_tshark(name: str, tmp_path: Path) -> None:
    path = tshark_oracle.CORPUS / name
    skip = {frame for (capture, frame) in EXCEPTIONS if capture == name}
    tshark_oracle.assert_matches(path, replay(tmp_path, str(path)), skip)
