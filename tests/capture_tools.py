"""Captures around live traffic (tcpdump in a netns) and ``hostcore replay`` of capture files."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from hostcore import cli


def replay(workdir: Path, *args: str) -> list[dict[str, Any]]:
    """Run ``hostcore replay ARGS`` in this process; the events it wrote to a file sink."""
    out = workdir / "replayed.msgpack"
    out.unlink(missing_ok=True)
    status = cli.main(
        ["replay", *args, "--events", "net_flow_tcp_begin", "--sink", f"file:path={out}"]
    )
    assert status == 0
    with out.open("rb") as stream:
        return list(msgpack.Unpacker(stream, raw=False))


@contextlib.contextmanager
def tcpdump(
    path: Path, netns: str | None, interface: str = "any", expression: str = "tcp"
) -> Iterator[None]:
    """tcpdump writing the packets ``expression`` selects to ``path`` inside ``netns``
    (None: this namespace) until the block ends."""
    command = [
        "tcpdump",
        "-i",
        interface,
        "--immediate-mode",  # else the kernel hands packets over in blocks, maybe after SIGINT
        "-U",
        "-n",
        "-w",
        str(path),
        expression,
    ]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        said = []
        for line in process.stderr:  # tcpdump says "listening on" once it captures
            said.append(line)
            if "listening on" in line:
                break
        else:
            raise AssertionError(f"tcpdump did not start: {''.join(said)}")
        yield
    finally:
        process.send_signal(signal.SIGINT)  # it writes what it holds, then exits
        process.wait(timeout=30)
