"""Locate the cgroup v2 hierarchy the probe attaches to, and name its cgroups."""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

from hostcore.bounded import BoundedCache

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


# A container's cgroup, by runtime: systemd scopes (docker-, cri-containerd-, crio-,
# libpod-<id>.scope) or a bare id directory (cgroupfs drivers: /docker/<id>, kubepods).
_CONTAINER = re.compile(r"(?:(?:docker|cri-containerd|crio|libpod)-)?([0-9a-f]{64})(?:\.scope)?")
RESCAN_INTERVAL_NS = 10**9
MAX_MISSING = 4096  # ids of removed cgroups, remembered so they do not cause rescans


def container_id(path: str) -> str:
    """The id of the innermost container whose cgroup holds ``path``, or ""."""
    for part in reversed(path.split("/")):
        match = _CONTAINER.fullmatch(part)
        if match:
            return match.group(1)
    return ""


class CgroupIndex:
    """Cgroup v2 paths by cgroup id (a cgroup directory's inode number is its id).

    An id not seen before makes it walk the hierarchy again at once; one that
    was still missing then, at most once a second.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._paths: dict[int, str] = {}
        self._missing: BoundedCache[int, bool] = BoundedCache(MAX_MISSING)
        self._scanned_ns = -RESCAN_INTERVAL_NS

    def path(self, cgroup_id: int) -> str | None:
        """The cgroup's path below the root ("/" for the root), or None if not found."""
        path = self._paths.get(cgroup_id)
        if path is None and (
            cgroup_id not in self._missing
            or time.monotonic_ns() - self._scanned_ns >= RESCAN_INTERVAL_NS
        ):
            self._scan()
            path = self._paths.get(cgroup_id)
            if path is None:
                self._missing.put(cgroup_id, True)
        return path

    def _scan(self) -> None:
        self._scanned_ns = time.monotonic_ns()
        paths = {}
        for directory, _, _ in os.walk(self._root):
            with contextlib.suppress(OSError):  # removed while walking
                paths[os.stat(directory).st_ino] = "/" + os.path.relpath(directory, self._root)
        paths[os.stat(self._root).st_ino] = "/"  # relpath named it "/."
        self._paths = paths
