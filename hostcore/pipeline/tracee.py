"""The Tracee output format: an event map rendered as Tracee v0.24's ``trace.Event`` JSON.

Keys and their order are those of types/trace/trace.go's ``Event`` in Tracee
v0.24 (what ``tracee --output json`` prints); what hostcore does not know gets
Go's zero value, as Tracee prints it. README.md ("Tracee output") has the mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FORMATS = ("hostcore", "tracee")
# Events Tracee has declare Tracee's id (EventSpec.tracee_id); the others are moved out
# of Tracee's id space, where their own ids would name other Tracee events.
OUTSIDE_TRACEE = 1_000_000


def tracee_id(declared: int | None, event_id: int) -> int:
    """The ``eventId`` of an event with hostcore id ``event_id`` and Tracee id ``declared``."""
    return OUTSIDE_TRACEE + event_id if declared is None else declared


def _value_type(value: Any) -> str:
    """A field's type when its event declared none (the core's ``lost_events``)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]string"
    return "map[string]int64" if isinstance(value, dict) else "unknown"


def render(event: Mapping[str, Any], types: Mapping[str, str], event_id: int) -> dict[str, Any]:
    """``event`` (the hostcore map) as a Tracee event; ``types`` are its fields' declared
    types, ``event_id`` its Tracee id (``tracee_id``)."""
    context = event["context"]
    pid = context["pid"] or 0
    tid = context["tid"] or 0
    container_id = context["container_id"] or ""
    data = event["data"]
    args = [
        {"name": name, "type": types.get(name) or _value_type(value), "value": value}
        for name, value in data.items()
    ]
    return {
        "timestamp": event["timestamp"],
        "threadStartTime": 0,
        "processorId": 0,
        "processId": pid,
        "cgroupId": context["cgroup_id"] or 0,
        "threadId": tid,
        "parentProcessId": 0,
        "hostProcessId": pid,
        "hostThreadId": tid,
        "hostParentProcessId": 0,
        "userId": context["uid"] or 0,
        "mountNamespace": 0,
        "pidNamespace": 0,
        "processName": context["comm"] or "",
        "executable": {"path": ""},
        "hostName": event["host"],
        "containerId": container_id,
        "container": {"id": container_id} if container_id else {},
        "kubernetes": {},
        "eventId": str(event_id),
        "eventName": event["name"],
        "argsNum": len(args),
        "returnValue": 0,
        "syscall": "",
        "stackAddresses": None,
        "contextFlags": {"containerStarted": bool(container_id), "isCompat": False},
        "threadEntityId": 0,
        "processEntityId": 0,
        "parentEntityId": 0,
        "args": args,
    }
