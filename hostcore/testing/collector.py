"""A msgpack stream collector in its own process, to be killed and restarted by a test.

``python -m hostcore.testing ADDRESS OUT`` listens on ``unix:PATH`` or
``HOST:PORT``, prints ``listening ADDRESS`` once it does, and appends every complete
map it reads (``msgpack.Unpacker``, one per connection) to OUT, flushed at once.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack

from hostcore.options import parse_address

WAIT_TIMEOUT_S = 60.0


def serve(address_text: str, out: Path) -> None:
    family, address = parse_address(address_text)
    listener = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_UNIX:
        Path(address).unlink(missing_ok=True)  # left by a collector that was killed
    else:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(address)
    listener.listen(16)
    bound = listener.getsockname()
    shown = f"unix:{bound}" if family == socket.AF_UNIX else f"{bound[0]}:{bound[1]}"
    print("listening", shown, flush=True)
    with out.open("ab") as sink:
        while True:
            connection, _ = listener.accept()
            unpacker = msgpack.Unpacker(raw=False)
            while chunk := connection.recv(65536):
                unpacker.feed(chunk)
                for event in unpacker:
                    sink.write(msgpack.packb(event))
                sink.flush()
            connection.close()


class Collector:
    """Runs the collector above; ``kill`` and ``start`` again keep its address."""

    def __init__(self, address: str, out: Path) -> None:
        self.address = address
        self.out = out
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Collector:
        command = [sys.executable, "-m", "hostcore.testing", self.address, str(self.out)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("listening "):
            self.process.kill()
            raise RuntimeError(f"the collector did not start: {line!r}")
        self.address = line.split()[1]  # HOST:0 becomes the port it got, kept for restarts
        return self

    def kill(self) -> None:
        """SIGKILL: what it had not read is lost with it, as with a crash."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def events(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        with self.out.open("rb") as stream:
            return list(msgpack.Unpacker(stream, raw=False))

    def wait_for(self, count: int, timeout_s: float = WAIT_TIMEOUT_S) -> list[dict[str, Any]]:
        """The events once there are at least ``count`` (polling the output file)."""
        deadline = time.monotonic() + timeout_s
        while len(events := self.events()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the collector has {len(events)} events, not {count}")
            time.sleep(0.01)
        return events

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
