from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from certs import Authority

from hostcore.probe.cgroup import cgroup2_mount


@pytest.fixture
def root() -> None:
    """Live tests need root; without it they fail (they are never skipped)."""
    assert os.geteuid() == 0, "live eBPF tests must run as root (CI runs them as root)"


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    """A CA of the test's own, in its temporary directory (tests/certs.py)."""
    return Authority(tmp_path / "pki")


@pytest.fixture(scope="session")
def tracefs() -> None:
    """Mount tracefs if nothing is there (tcpstates-bpfcc needs it)."""
    if not any(Path("/sys/kernel/tracing").iterdir()):
        subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"], check=True)


CONTAINER_ID = "0123456789abcdef" * 4


def _child_cgroup(name: str) -> Iterator[Path]:
    """A child of the cgroup v2 root; the test's processes in it must be gone by teardown."""
    path = cgroup2_mount() / name
    path.mkdir()
    try:
        yield path
    finally:
        path.rmdir()


@pytest.fixture
def child_cgroup(root: None) -> Iterator[Path]:
    yield from _child_cgroup(f"hostcore-test-{os.getpid()}")


@pytest.fixture
def container_cgroup(root: None) -> Iterator[Path]:
    """Named as docker's systemd driver names a container's cgroup."""
    yield from _child_cgroup(f"docker-{CONTAINER_ID}.scope")


@pytest.fixture
def netns_pair(root: None) -> Iterator[tuple[str, str, str]]:
    """Two network namespaces joined by a veth pair: (client ns, server ns, server address).

    The addresses are from 198.18.0.0/15, the range set aside for benchmark test hosts.
    """
    suffix = str(os.getpid())
    client, server = f"hc-cli-{suffix}", f"hc-srv-{suffix}"
    commands = [
        f"ip netns add {client}",
        f"ip netns add {server}",
        f"ip link add hc-c{suffix} netns {client} type veth peer name hc-s{suffix} netns {server}",
        f"ip -n {client} addr add 198.18.0.1/24 dev hc-c{suffix}",
        f"ip -n {server} addr add 198.18.0.2/24 dev hc-s{suffix}",
        f"ip -n {client} link set hc-c{suffix} up",
        f"ip -n {server} link set hc-s{suffix} up",
        f"ip -n {client} link set lo up",
        f"ip -n {server} link set lo up",
    ]
    try:
        for command in commands:
            subprocess.run(command.split(), check=True)
        yield client, server, "198.18.0.2"
    finally:
        for name in (client, server):
            subprocess.run(["ip", "netns", "del", name], check=False)
