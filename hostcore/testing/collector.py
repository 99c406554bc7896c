"""A msgpack stream collector in its own process, to be killed and restarted by a test.

``python -m hostcore.testing ADDRESS OUT [CERT KEY [CLIENT_CA]]`` listens on
``unix:PATH`` or ``HOST:PORT`` (with CERT and KEY: TLS; with CLIENT_CA too: only
clients with a certificate from it), prints ``listening ADDRESS`` once it does, and
appends every complete map it reads (``msgpack.Unpacker``, one per connection) to
OUT, flushed at once.
"""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from hostcore.options import parse_address

WAIT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CollectorTls:
    """The collector's certificate and key (PEM files), and the CA its clients need, if any."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    def arguments(self) -> list[str]:
        files = [self.cert_file, self.key_file, self.client_ca_file]
        return [str(path) for path in files if path is not None]

    @staticmethod
    def from_arguments(arguments: list[str]) -> CollectorTls | None:
        if not arguments:
            return None
        client_ca = Path(arguments[2]) if len(arguments) > 2 else None
        return CollectorTls(Path(arguments[0]), Path(arguments[1]), client_ca)

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.client_ca_file)
        return context


def serve(address_text: str, out: Path, tls: CollectorTls | None = None) -> None:
    family, address = parse_address(address_text)
    listener = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_UNIX:
        Path(address).unlink(missing_ok=True)  # left by a collector that was killed
    else:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(address)
    listener.listen(16)
    context = tls.context() if tls is not None else None
    bound = listener.getsockname()
    shown = f"unix:{bound}" if family == socket.AF_UNIX else f"{bound[0]}:{bound[1]}"
    print("listening", shown, flush=True)
    with out.open("ab") as sink:
        while True:
            connection, _ = listener.accept()
            try:
                if context is not None:
                    connection = context.wrap_socket(connection, server_side=True)
                _collect(connection, sink)
            except ssl.SSLError as error:  # a client this collector refused
                print("refused", error.reason, file=sys.stderr, flush=True)
            finally:
                connection.close()


def _collect(connection: socket.socket, sink: Any) -> None:
    unpacker = msgpack.Unpacker(raw=False)
    while chunk := connection.recv(65536):
        unpacker.feed(chunk)
        for event in unpacker:
            sink.write(msgpack.packb(event))
        sink.flush()


class Collector:
    """Runs the collector above; ``kill`` and ``start`` again keep its address."""

    def __init__(self, address: str, out: Path, tls: CollectorTls | None = None) -> None:
        self.address = address
        self.out = out
        self.tls = tls
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Collector:
        command = [sys.executable, "-m", "hostcore.testing", self.address, str(self.out)]
        if self.tls is not None:
            command += self.tls.arguments()
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
