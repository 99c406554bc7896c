"""Mutated capture files through the whole replay: every failure is counted, none escapes."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tshark_oracle import CORPUS, SMALL_CAPTURES

from hostcore import cli

SEEDS = SMALL_CAPTURES
TOTALS = re.compile(
    r"(?P<frames>[\d,]+) packets read, (?P<decoded>[\d,]+) decoded\n"
    r"  skipped: (?P<skipped>[\d,]+).*\n  undecodable: (?P<undecodable>[\d,]+)"
)


@functools.cache
def _seed(index: int) -> bytes:
    return (CORPUS / SEEDS[index]).read_bytes()


def _number(text: str) -> int:
    return int(text.replace(",", ""))


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(0, len(SEEDS) - 1),
    st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), max_size=8),
    st.integers(24, 2**20),
)
def test_mutated_captures_replay_with_every_frame_accounted_for(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    seed: int,
    changes: list[tuple[int, int]],
    cut: int,
) -> None:
    data = bytearray(_seed(seed))
    for position, value in changes:
        data[position % len(data)] = value
    path = tmp_path / "mutated"
    path.write_bytes(bytes(data[:cut]))
    capsys.readouterr()
    status = cli.main(["replay", str(path), "--sink", f"file:path={tmp_path / 'events'}"])
    err = capsys.readouterr().err
    if status == 2:  # the header itself was mutated: refused before anything ran
        assert "not a pcap or pcapng file" in err or "too short" in err
        return
    assert status == 0, err
    totals = TOTALS.search(err)
    assert totals, err
    frames, decoded, skipped, undecodable = map(_number, totals.groups())
    assert frames == decoded + skipped + undecodable
