"""Attach cgroup programs through BPF links (libbpf's bpf_link_create via ctypes).

A link shares the cgroup with other programs (multi-attach), and the kernel
detaches it when its last file descriptor closes: on exit, on a crash, on SIGKILL.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import os
from functools import cache


class AttachType(enum.IntEnum):
    """The kernel's enum bpf_attach_type values used here."""

    CGROUP_INET_INGRESS = 0
    CGROUP_INET_EGRESS = 1
    CGROUP_INET_SOCK_CREATE = 2
    CGROUP_SOCK_OPS = 3
    CGROUP_INET4_CONNECT = 10
    CGROUP_INET6_CONNECT = 11
    CGROUP_INET4_POST_BIND = 12
    CGROUP_INET6_POST_BIND = 13


@cache
def _libbpf() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.bpf_link_create.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    lib.bpf_link_create.restype = ctypes.c_int
    return lib


def link_cgroup(program_fd: int, cgroup_fd: int, attach_type: AttachType) -> int:
    """Attach ``program_fd`` to ``cgroup_fd``; returns the link fd (close it to detach)."""
    fd: int = _libbpf().bpf_link_create(program_fd, cgroup_fd, int(attach_type), None)
    if fd < 0:
        error = -fd if fd != -1 else ctypes.get_errno()
        raise OSError(error, f"bpf_link_create({attach_type.name}): {os.strerror(error)}")
    return fd
