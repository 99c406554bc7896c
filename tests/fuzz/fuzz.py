"""Run one fuzz target under atheris (coverage-guided libFuzzer) from a seed corpus.

    python tests/fuzz/fuzz.py TARGET [--runs N] [--artifacts DIR]

TARGET is one of tests/fuzz/targets.py's. Seeds: well-formed inputs built by the test
helpers (packets, dnspython answers) and the small public captures. A crasher is written
to DIR (default: the current directory) as ``crash-<sha1>``; copy it to
``tests/fuzz/crashers/TARGET/`` and ``tests/test_fuzz.py`` replays it for good.
libFuzzer's last lines give the figures: ``Done N runs in S second(s)`` and coverage.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import atheris

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS), str(TESTS / "fuzz")]

with atheris.instrument_imports(include=["hostcore"]):
    import targets

# Longest input: the probe passes up at most 2048 bytes of a packet (DNS answers); a capture
# seed of 20 KiB fits with room to grow.
MAX_LEN = {"decoder": 4096, "dns": 4096, "capture": 1 << 16}


def seeds(target: str) -> Iterator[bytes]:
    """Well-formed inputs for ``target``, for the fuzzer to mutate."""
    if target == "capture":
        from tshark_oracle import CORPUS, SMALL_CAPTURES

        for name in SMALL_CAPTURES:
            yield (CORPUS / name).read_bytes()
        return
    from dns_messages import answer

    dns_answer = answer(
        "www.shop.test.",
        ("www.shop.test.", 60, "CNAME", "edge.cdn.test."),
        ("edge.cdn.test.", 30, "A", "127.0.2.2"),
        ("edge.cdn.test.", 30, "AAAA", "fd00::2"),
    )
    if target == "dns":
        yield dns_answer
        return
    from packets import ACK, SYN, extension, fragment, ipv4, ipv6, tcp, udp

    from hostcore.records import HEADER

    syn_ack = ipv4("10.1.2.3", "192.0.2.9", tcp(443, 51000, SYN | ACK, seq=7, ack=4001))
    yield syn_ack
    yield ipv6(
        "fd00::1", "fd00::2", extension(44) + fragment(6, 0, False) + tcp(80, 9, SYN | ACK), 0
    )
    yield ipv4("10.0.0.53", "10.0.0.1", udp(53, 40000, dns_answer), proto=17)
    yield HEADER.pack(1, 2, 3, bytes(32), len(syn_ack), 1) + syn_ack  # a ring-buffer record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(targets.TARGETS))
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs to try")
    parser.add_argument("--artifacts", type=Path, default=Path("."), help="where crashers go")
    args = parser.parse_args()
    corpus = Path(tempfile.mkdtemp(prefix=f"hostcore-fuzz-{args.target}-"))
    for number, seed in enumerate(seeds(args.target)):
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
