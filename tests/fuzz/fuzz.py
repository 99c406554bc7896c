"""Run one fuzz target under atheris (coverage-guided libFuzzer) from a seed corpus.

    python tests/fuzz/fuzz.py TARGET [--runs N] [--artifacts DIR]

TARGET is one of tests/fuzz/targets.py's, which also gives its seeds: well-formed inputs
built by the test helpers (packets, dnspython answers) and small public captures. A crasher
is written
to DIR (default: the current directory) as ``crash-<sha1>``; copy it to
``tests/fuzz/crashers/TARGET/`` and ``tests/test_fuzz.py`` replays it for good.
libFuzzer's last lines give the figures: ``Done N runs in S second(s)`` and coverage.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import atheris

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS), str(TESTS / "fuzz")]

with atheris.instrument_imports(include=["hostcore"]):
    import targets

# Longest input: the probe passes up at most 2048 bytes of a packet (DNS answers); a capture
# seed of 20 KiB fits with room to grow.
MAX_LEN = {"decoder": 4096, "dns": 4096, "capture": 1 << 16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(targets.TARGETS))
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs to try")
    parser.add_argument("--artifacts", type=Path, default=Path("."), help="where crashers go")
    args = parser.parse_args()
    corpus = Path(tempfile.mkdtemp(prefix=f"hostcore-fuzz-{args.target}-"))
    for number, seed in enumerate(targets.seeds(args.target)):
        (corpus / f"seed-{number}").write_bytes(seed)
    libfuzzer_args = [
        sys.argv[0],
        f"-runs={args.runs}",
        f"-max_len={MAX_LEN[args.target]}",
        f"-artifact_prefix={args.artifacts}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    atheris.Setup(libfuzzer_args, targets.TARGETS[args.target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
