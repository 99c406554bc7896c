"""Finding cgroup v2 and wiring kernel headers, on fake trees (the real ones are the host's)."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from hostcore.probe import cgroup, kernel_headers

HYBRID = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""


def mounts(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mounts"
    path.write_text(text)
    return path


def test_cgroup2_found_in_a_hybrid_layout(tmp_path: Path) -> None:
    assert cgroup.cgroup2_mount(mounts(tmp_path, HYBRID)) == Path("/sys/fs/cgroup/unified")


def test_no_cgroup2_says_how_to_mount_one(tmp_path: Path) -> None:
    v1_only = "".join(line + "\n" for line in HYBRID.splitlines()[:2])
    with pytest.raises(cgroup.CgroupError, match="mount -t cgroup2"):
        cgroup.cgroup2_mount(mounts(tmp_path, v1_only))


def test_attach_target_resolves_relative_paths_and_refuses_outside_ones(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    (root / "system.slice").mkdir(parents=True)
    (root / "system.slice" / "cgroup.procs").touch()
    table = mounts(tmp_path, f"cgroup2 {root} cgroup2 rw 0 0\n")
    assert cgroup.attach_target("", table) == root
    assert cgroup.attach_target("system.slice", table) == root / "system.slice"
    with pytest.raises(cgroup.CgroupError, match="not inside the cgroup v2 hierarchy"):
        cgroup.attach_target(str(tmp_path), table)
    with pytest.raises(cgroup.CgroupError, match="not a cgroup v2 directory"):
        cgroup.attach_target("missing.slice", table)


def debian_headers(src: Path, version: str) -> None:
    (src / f"linux-headers-{version}-amd64").mkdir(parents=True)
    (src / f"linux-headers-{version}-common").mkdir()


def test_wire_links_the_newest_debian_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    src, modules = tmp_path / "src", tmp_path / "modules"
    debian_headers(src, "6.1.0-9")
    debian_headers(src, "6.1.0-56")
    said = kernel_headers.wire(modules, src)
    build = modules / platform.release() / "build"
    assert build.resolve() == src / "linux-headers-6.1.0-56-amd64"
    assert (build.parent / "source").resolve() == src / "linux-headers-6.1.0-56-common"
    assert said is not None and "linux-headers-6.1.0-56-amd64" in said


def test_wire_leaves_present_headers_alone(tmp_path: Path) -> None:
    build = tmp_path / "modules" / platform.release() / "build"
    (build / "include").mkdir(parents=True)
    assert kernel_headers.wire(tmp_path / "modules", tmp_path / "src") is None
    assert not build.is_symlink()


def test_wire_without_headers_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install linux-headers"):
        kernel_headers.wire(tmp_path / "modules", tmp_path / "src")
