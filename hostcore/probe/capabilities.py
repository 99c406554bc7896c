"""Which Linux capabilities the live probe needs, and which this process lacks."""

from __future__ import annotations

from pathlib import Path

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

_NAMES = {CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_PERFMON: "CAP_PERFMON", CAP_BPF: "CAP_BPF"}


def effective(status: Path = Path("/proc/self/status")) -> int:
    """The effective capability mask of this process."""
    for line in status.read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def missing_for_probe(mask: int) -> list[str]:
    """Capabilities the probe needs that ``mask`` lacks (CAP_SYS_ADMIN covers BPF and PERFMON)."""
    missing = []
    for cap, name in _NAMES.items():
        covered = mask >> cap & 1 or (cap != CAP_NET_ADMIN and mask >> CAP_SYS_ADMIN & 1)
        if not covered:
            missing.append(name)
    return missing
