"""The fuzzers of tests/fuzz: a short run of each (the long one is `make fuzz`), and every
crasher they found, replayed as a regression test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).parent / "fuzz"
sys.path.insert(0, str(FUZZ))

from targets import TARGETS, seeds  # noqa: E402

SHORT_RUNS = 3000
# Inputs every target must take: its seeds, and the crashers it once failed on.
SAVED = [
    (target, f"seed-{number}", seed)
    for target in TARGETS
    for number, seed in enumerate(seeds(target))
]
SAVED += [
    (path.parent.name, path.name, path.read_bytes())
    for path in sorted((FUZZ / "crashers").glob("*/*"))
]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_short_fuzz_run_finds_no_crash(target: str, tmp_path: Path) -> None:
    command = [sys.executable, str(FUZZ / "fuzz.py"), target, f"--runs={SHORT_RUNS}"]
    result = subprocess.run(
        [*command, f"--artifacts={tmp_path}"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"Done {SHORT_RUNS} runs" in result.stderr
    assert not list(tmp_path.iterdir())  # no crash-*, leak-* or timeout-* artifact


@pytest.mark.parametrize(
    ("target", "data"), [(t, data) for t, _, data in SAVED], ids=[f"{t}/{n}" for t, n, _ in SAVED]
)
def test_saved_input_is_taken(target: str, data: bytes) -> None:
    TARGETS[target](data)
