"""The ``context`` of an event: the process, user, cgroup and container behind its socket."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hostcore.bounded import BoundedCache
from hostcore.packet import Owner, Packet
from hostcore.probe.cgroup import CgroupIndex, container_id
from hostcore.probe.processes import ProcessReader

# The first seven from the probe and the cgroup; those after "owner" from /proc, read
# once per process (hostcore/probe/processes.py), and "cpu" from the probe again.
FIELDS = (
    "pid",
    "tid",
    "comm",
    "uid",
    "cgroup_id",
    "container_id",
    "owner",
    "ppid",
    "ns_pid",
    "ns_tid",
    "ns_ppid",
    "start_time",
    "process_start_time",
    "parent_start_time",
    "pid_ns",
    "mnt_ns",
    "nodename",
    "cpu",
)
UNKNOWN: Mapping[str, Any] = dict.fromkeys(FIELDS)
CACHE_LIMIT = 65536  # distinct (owner, cgroup) pairs kept built


class Contexts:
    """Builds context maps from packets; each distinct one is built once and shared.

    Sockets older than the probe have no owner in their packets: ``add_owners``
    names them (by socket cookie) once they are found through /proc. ``processes``
    reads what /proc says of an owner (once per process).
    """

    def __init__(
        self, cgroups: CgroupIndex | None = None, processes: ProcessReader | None = None
    ) -> None:
        self._cgroups = cgroups
        self._found: dict[int, Owner] = {}
        self._processes = processes or ProcessReader()
        self._cache: BoundedCache[tuple[Owner | None, int], Mapping[str, Any]] = BoundedCache(
            CACHE_LIMIT
        )

    def add_owners(self, owners: Mapping[int, Owner]) -> None:
        """Owners of sockets older than the probe, by socket cookie."""
        self._found.update(owners)

    def of(self, packet: Packet | None) -> Mapping[str, Any]:
        """The context of the socket ``packet`` passed through (all null without one)."""
        if packet is None:
            return UNKNOWN
        owner = packet.owner or self._found.get(packet.socket_cookie)
        key = (owner, packet.cgroup_id)
        context = self._cache.get(key)
        if context is None:
            context = self._build(owner, packet.cgroup_id)
            if context["container_id"] is not None or not packet.cgroup_id:
                # Not cached while the cgroup is unknown: a new one is found on a later event.
                self._cache.put(key, context)
        return context

    def _build(self, owner: Owner | None, cgroup_id: int) -> Mapping[str, Any]:
        context = dict(UNKNOWN)
        if owner is not None:
            context.update(
                pid=owner.pid,
                tid=owner.tid,
                comm=owner.comm,
                uid=owner.uid,
                owner=owner.source.name.lower(),
                cpu=owner.cpu,
            )
            facts = self._processes.facts(owner.pid, owner.tid, owner.comm)
            if facts is not None:
                context.update(facts._asdict())
        if cgroup_id:
            context["cgroup_id"] = cgroup_id
            path = self._cgroups.path(cgroup_id) if self._cgroups else None
            if path is not None:
                context["container_id"] = container_id(path)
        return context
