"""Locate the cgroup v2 hierarchy the probe attaches to."""

from __future__ import annotations

from pathlib import Path

MOUNTS = Path("/proc/mounts")


class CgroupError(RuntimeError):
    """No usable cgroup v2 directory; the message says what to do."""


def cgroup2_mount(mounts: Path = MOUNTS) -> Path:
    """The first cgroup2 mount point in ``mounts`` (/sys/fs/cgroup or a hybrid layout's)."""
    for line in mounts.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return Path(parts[1].replace("\\040", " "))
    raise CgroupError(
        "no cgroup v2 hierarchy is mounted; mount one with "
        "'mount -t cgroup2 none /sys/fs/cgroup' (or a free directory) and try again"
    )


def attach_target(configured: str, mounts: Path = MOUNTS) -> Path:
    """The cgroup directory to attach to: ``configured`` if set, else the v2 root."""
    root = cgroup2_mount(mounts)
    if not configured:
        return root
    path = Path(configured)
    if not path.is_absolute():
        path = root / path
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise CgroupError(f"cgroup {configured!r} is not inside the cgroup v2 hierarchy at {root}")
    if not (resolved / "cgroup.procs").exists():
        raise CgroupError(f"cgroup {configured!r} ({resolved}) is not a cgroup v2 directory")
    return resolved
