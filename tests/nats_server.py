"""A real nats-server (Debian's) with JetStream on file storage, on loopback, restartable.

Without a configuration it runs as ``nats-server -js -sd DIR``; with one (the text of a
nats-server.conf, whose ``$NAME`` variables come from ``environment``), that file
decides everything but the address and the port, which this class sets, and the
store, unless it has a ``jetstream`` block of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runs import HOSTCORE
from traffic import free_port
from waiting import READY_TIMEOUT_S


def tail(url: str, *args: str) -> list[dict[str, Any]]:
    """`hostcore tail URL --no-follow ARGS`: what the stream holds now."""
    result = subprocess.run(
        [HOSTCORE, "tail", url, "--no-follow", *args],
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


class NatsServer:
    """``kill`` then ``start`` keep the port, the store and the configuration."""

    def __init__(
        self, store: Path, config: str = "", environment: Mapping[str, str] | None = None
    ) -> None:
        self.store = store
        self.port = free_port()
        self.config = config
        self.environment = dict(environment or {})
        self.process: subprocess.Popen[str] | None = None
        self.log: list[str] = []

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        where = ["-a", "127.0.0.1", "-p", str(self.port)]
        if not self.config:
            return ["nats-server", "-js", "-sd", str(self.store), *where]
        path = self.store.parent / f"{self.store.name}.conf"
        store = f"\njetstream {{ store_dir: {str(self.store)!r} }}\n"
        path.write_text(self.config if "jetstream" in self.config else self.config + store)
        return ["nats-server", "-c", str(path), *where]

    def start(self) -> NatsServer:
        self.process = subprocess.Popen(
            self._command(),
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **self.environment},
        )
        assert self.process.stderr is not None
        seen = []
        for line in self.process.stderr:  # it logs to stderr, "Server is ready" last
            seen.append(line)
            if "Server is ready" in line:
                # Keep reading, so that its log never fills the pipe and stalls it.
                threading.Thread(target=self._keep_log, args=(self.process,), daemon=True).start()
                return self
        raise AssertionError(f"nats-server did not start:\n{''.join(seen)}")

    def _keep_log(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self.log.extend(process.stderr)

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
