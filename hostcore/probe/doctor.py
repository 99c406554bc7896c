"""``hostcore doctor``: check what the live probe needs, each check with its fix."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hostcore import probe
from hostcore.packet import PacketKind
from hostcore.probe import capabilities, cgroup, kernel_headers

_MIN_RINGBUF_KERNEL = (5, 8)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # what was found, or the exact fix


def _capabilities() -> Check:
    missing = capabilities.missing_for_probe(capabilities.effective())
    if missing:
        return Check("capabilities", False, f"missing {', '.join(missing)}: run as root")
    return Check("capabilities", True, "CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN present")


def _cgroup2() -> Check:
    try:
        return Check("cgroup v2", True, f"mounted at {cgroup.cgroup2_mount()}")
    except cgroup.CgroupError as error:
        return Check("cgroup v2", False, str(error))


def _bcc() -> Check:
    try:
        import bcc
    except ImportError:
        return Check(
            "bcc",
            False,
            "cannot import bcc: 'apt-get install python3-bpfcc' and create the venv from "
            f"/usr/bin/python3 with --system-site-packages (this is {sys.executable})",
        )
    return Check("bcc", True, f"imported from {Path(bcc.__file__).parent}")


def _headers(fix: bool) -> Check:
    build = kernel_headers.modules_dir() / "build"
    if kernel_headers.present():
        return Check("kernel headers", True, f"{build} -> {build.resolve()}")
    if not fix:
        return Check(
            "kernel headers",
            False,
            f"{build} missing: 'apt-get install linux-headers-$(dpkg --print-architecture)', "
            "then 'hostcore doctor --fix'",
        )
    try:
        return Check("kernel headers", True, kernel_headers.wire() or "present")
    except OSError as error:
        return Check("kernel headers", False, str(error))


def _ring_buffer() -> Check:
    release = platform.release()
    numbers = tuple(int(p) for p in release.split("-")[0].split(".")[:2] if p.isdigit())
    if numbers < _MIN_RINGBUF_KERNEL:
        return Check("ring buffer", False, f"kernel {release} predates BPF ring buffers (5.8)")
    return Check("ring buffer", True, f"kernel {release} has BPF ring buffers")


def _probe_loads() -> Check:
    every_kind = PacketKind(sum(PacketKind))  # compile every filter branch
    flow_probe = probe.FlowProbe(every_kind, cgroup.cgroup2_mount(), 64)
    try:
        flow_probe.attach()
    except probe.ProbeError as error:
        return Check("probe", False, str(error))
    finally:
        flow_probe.close()
    return Check("probe", True, f"{probe.NAME} compiled, loaded, attached and detached")


def checks(fix: bool = False) -> Iterator[Check]:
    """Run the checks in order; the probe load is tried only when the rest passed."""
    results = []
    steps: list[Callable[[], Check]] = [
        _capabilities,
        _cgroup2,
        _bcc,
        lambda: _headers(fix),
        _ring_buffer,
    ]
    for step in steps:
        result = step()
        results.append(result)
        yield result
    if all(result.ok for result in results):
        yield _probe_loads()
