"""Never in the way: transfers arrive byte for byte while the probe is attached and its ring
buffer is full and dropping (the programs let every packet through whatever happens)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dns_server import dig, dns_netns
from runs import Hostcore
from traffic import TOOLS, http_server, no_syncookies
from waiting import wait_until

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

TINY_RING = "ring_buffer_kib = 4\npoll_interval_ms = 500\n"  # one page, drained twice a second
DROPPING_TIMEOUT_S = 30
TRANSFER_BYTES = 32 << 20
# A DNS answer of about 1.6 KB (six TXT records of 250 bytes): a 2 KiB ring-buffer slot.
TXT = [f"{index}{'x' * 249}" for index in range(6)]
ZONE = [*(f"txt-record=big.test,{text}" for text in TXT), "host-record=host.test,127.0.7.7"]


@pytest.fixture
def flood(root: None) -> Iterator[None]:
    """Connections as fast as one process makes them (tests/tools/burst.py), until the end."""
    process = subprocess.Popen([sys.executable, str(TOOLS / "burst.py"), str(10**9)])
    try:
        yield
    finally:
        process.terminate()
        process.wait()


def kernel_drops_seen(hostcore: Hostcore) -> int:
    """Ring-buffer reserve failures hostcore has logged in ``lost_events`` so far."""
    return sum(
        entry["lost"].get("kernel_reserve_failures", 0)
        for entry in list(hostcore.logs)
        if entry.get("event") == "lost_events"
    )


def wait_for_more_drops(hostcore: Hostcore, than: int) -> int:
    """Wait until hostcore reports the kernel dropping records beyond ``than``."""
    return wait_until(
        lambda: (seen := kernel_drops_seen(hostcore)) > than and seen,
        "the ring buffer to drop records",
        DROPPING_TIMEOUT_S,
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def echo_both_ways(host: str, payload: bytes) -> bytes:
    """Send ``payload`` to an echo server on ``host`` and return what came back."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as server:
        server.bind((host, 0))
        server.listen()

        def echo() -> None:
            connection, _ = server.accept()
            with connection:
                while chunk := connection.recv(1 << 16):
                    connection.sendall(chunk)

        thread = threading.Thread(target=echo)
        thread.start()
        received = bytearray()
        with socket.create_connection(server.getsockname()[:2]) as client:
            sender = threading.Thread(target=lambda: (client.sendall(payload), client.shutdown(1)))
            sender.start()
            while chunk := client.recv(1 << 16):
                received += chunk
            sender.join()
        thread.join()
    return bytes(received)


def while_dropping(hostcore: Hostcore, transfer: Callable[[], Any]) -> Any:
    """Run ``transfer`` with the ring buffer seen dropping records before and after it."""
    before = wait_for_more_drops(hostcore, 0)
    result = transfer()
    wait_for_more_drops(hostcore, before)
    return result


@pytest.mark.usefixtures("flood")
def test_transfers_are_unchanged_while_the_ring_buffer_drops(tmp_path: Path) -> None:
    config = tmp_path / "hostcore.toml"
    config.write_text(TINY_RING)
    served = tmp_path / "served"
    served.mkdir()
    original = os.urandom(TRANSFER_BYTES)
    (served / "blob").write_bytes(original)
    download = tmp_path / "downloaded"
    with (
        http_server("127.0.0.1", directory=served) as port,
        no_syncookies(),
        Hostcore(tmp_path, ["--config", str(config)]) as hostcore,
        dns_netns(ZONE, tmp_path) as netns,
    ):
        url = f"http://127.0.0.1:{port}/blob"
        command = ["curl", "-sS", "--noproxy", "*", "-o", str(download), url]
        while_dropping(hostcore, lambda: subprocess.run(command, check=True, timeout=120))
        echoed = while_dropping(hostcore, lambda: echo_both_ways("::1", original))
        answers = while_dropping(
            hostcore,
            lambda: (
                [sorted(dig(netns, "big.test", "TXT", *t)) for t in ((), ("+tcp",))]
                + [dig(netns, "host.test")]
            ),
        )
        hostcore.stop()
    assert sha256(download.read_bytes()) == sha256(original)
    assert len(echoed) == len(original) and sha256(echoed) == sha256(original)
    quoted = [f'"{text}"' for text in TXT]
    assert answers == [quoted, quoted, ["127.0.7.7"]]
    assert hostcore.log("totals")["kernel_reserve_failures"] > 0
