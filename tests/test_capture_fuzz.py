"""Mutated capture files: every failure is a counted reason, never an exception that escapes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tshark_oracle import CORPUS

from hostcore.capture.files import CaptureError, CaptureFile
from hostcore.capture.links import LinkError, ip_offset
from hostcore.decoder import DecodeError, decode
from hostcore.packet import Direction

# Small files of each container and several link types.
SEEDS = [
    (CORPUS / name).read_bytes()
    for name in (
        "pcpp_many_interfaces-1.pcapng",  # pcapng, Ethernet and BSD loopback
        "pcpp_nanosecs_big_endian.pcap",
        "zeek_nflog-http.pcap",
        "lwerdna_simple_http_sll2.pcap",
        "arkime_80211http.pcap",
        "zeek_vlan-qinqinq.pcap",
    )
]


def _replay_all(path: Path) -> int:
    frames = 0
    try:
        with CaptureFile(path) as capture:
            for frame in capture:
                frames += 1
                try:
                    offset, _ = ip_offset(frame.link_type, frame.data)
                    decode(frame.data[offset:], frame.timestamp_ns, Direction.INGRESS)
                except (LinkError, DecodeError):
                    pass
    except CaptureError:
        pass
    return frames


@settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(0, len(SEEDS) - 1),
    st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), max_size=8),
    st.integers(0, 2**20),
)
def test_mutated_captures_never_raise(
    tmp_path: Path, seed: int, changes: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(SEEDS[seed])
    for position, value in changes:
        data[position % len(data)] = value
    path = tmp_path / "mutated"
    path.write_bytes(bytes(data[: max(cut, 24)]))
    _replay_all(path)
