"""A real nats-server (Debian's) with JetStream on file storage, on loopback, restartable."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

from traffic import free_port
from waiting import READY_TIMEOUT_S


class NatsServer:
    """``nats-server -js -sd DIR`` on 127.0.0.1; ``kill`` then ``start`` keep port and store."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        command = ["nats-server", "-js", "-sd", str(self.store), "-a", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "-p", str(self.port)], stderr=subprocess.PIPE, text=True
        )
        assert self.process.stderr is not None
        seen = []
        for line in self.process.stderr:  # it logs to stderr, "Server is ready" last
            seen.append(line)
            if "Server is ready" in line:
                # Keep reading, so that its log never fills the pipe and stalls it.
                threading.Thread(target=self.process.stderr.read, daemon=True).start()
                return self
        raise AssertionError(f"nats-server did not start:\n{''.join(seen)}")

    def kill(self) -> None:
        """SIGKILL, as a crash: what it had stored is on disk, acks in flight are lost."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(READY_TIMEOUT_S)
            self.process = None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
