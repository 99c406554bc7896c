"""Make kernel headers visible to bcc when the running kernel ships none.

bcc looks in /lib/modules/$(uname -r)/{build,source}. For cgroup_skb programs,
which use only stable UAPI structs, a distribution's headers of another version
serve. Debian splits them into an arch package and a common one.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

_DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


@dataclass(frozen=True)
class Headers:
    build: Path
    source: Path


MODULES = Path("/lib/modules")
SOURCES = Path("/usr/src")


def modules_dir(modules: Path = MODULES) -> Path:
    return modules / platform.release()


def present(modules: Path = MODULES) -> bool:
    """True if bcc will find headers for the running kernel."""
    build = modules_dir(modules) / "build"
    return (build / "include").is_dir() or (build / "Makefile").exists()


def newest_debian_headers(src: Path = SOURCES) -> Headers | None:
    """The newest Debian linux-headers-<ver>-<arch> tree with its -common sibling."""
    arch = _DEBIAN_ARCH.get(platform.machine(), platform.machine())
    found = []
    for build in src.glob(f"linux-headers-*-{arch}"):
        version = build.name.removeprefix("linux-headers-").removesuffix(f"-{arch}")
        source = src / f"linux-headers-{version}-common"
        if source.is_dir():
            found.append(Headers(build, source))
    return max(found, key=lambda h: _version_key(h.build.name), default=None)


def _version_key(name: str) -> list[int]:
    return [int(part) for part in name.replace("-", ".").split(".") if part.isdigit()]


def wire(modules: Path = MODULES, src: Path = SOURCES) -> str | None:
    """Link the newest Debian headers in if none are present; say what was done."""
    if present(modules):
        return None
    headers = newest_debian_headers(src)
    if headers is None:
        raise FileNotFoundError(
            "no kernel headers for bcc: install them with "
            "'apt-get install linux-headers-$(dpkg --print-architecture)'"
        )
    target = modules_dir(modules)
    target.mkdir(parents=True, exist_ok=True)
    for name, path in (("build", headers.build), ("source", headers.source)):
        link = target / name
        if link.is_symlink():
            link.unlink()
        os.symlink(path, link)
    return f"linked {target}/build -> {headers.build} and {target}/source -> {headers.source}"
