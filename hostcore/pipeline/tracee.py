"""The Tracee output format: an event map rendered as Tracee v0.24.1's ``trace.Event`` JSON.

Keys, their order and their JSON types are those of types/trace/trace.go's
``Event`` in Tracee v0.24.1 (what ``tracee --output json`` prints); findings
are shaped as pkg/events/findings/findings.go makes Tracee's own. What hostcore
does not know gets Go's zero value, as Tracee prints it. README.md ("Tracee
output") says where each value comes from.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hostcore.bounded import BoundedCache
from hostcore.events import LOST_EVENTS_ID, LOST_EVENTS_NAME, EventSpec
from hostcore.signatures.spec import SignatureSpec

FORMATS = ("hostcore", "tracee")
# Events Tracee has declare Tracee's id (EventSpec.tracee_id: v0.24.1's); hostcore's
# other events are moved out of Tracee's id space (0 to 9999, and signatures' ids are
# handed out from 6000 at run time).
OUTSIDE_TRACEE = 1_000_000
ENTITY_IDS_LIMIT = 65536  # tasks whose entity ids are kept computed

# What Argument.UnmarshalJSON (types/trace/trace.go) accepts a JSON number as: an integer
# in range for these types, any number for the float ones (float32's range for "float").
_INTEGER_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
    "trace.Pointer": (0, 2**64 - 1),
}
_FLOAT_LIMITS = {"float64": math.inf, "float": 3.4028234663852886e38}
# Types it decodes into structs of its own, which no hostcore value is.
_STRUCT_TYPES = frozenset(
    {
        "trace.ProtoIPv4",
        "trace.ProtoIPv6",
        "trace.ProtoTCP",
        "trace.ProtoUDP",
        "trace.ProtoICMP",
        "trace.ProtoICMPv6",
        "trace.PktMeta",
        "trace.ProtoDNS",
        "[]trace.DnsQueryData",
        "[]trace.DnsResponseData",
        "trace.ProtoHTTP",
        "trace.ProtoHTTPRequest",
        "trace.ProtoHTTPResponse",
        "trace.PacketMetadata",
    }
)
# Severity as Tracee's signatures give it (api/v1beta1/threat.proto: INFO 0 .. CRITICAL 4).
SEVERITIES = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
# MITRE ATT&CK's enterprise tactics, as Tracee's "Category" names them.
TACTICS = frozenset(
    {
        "reconnaissance",
        "resource-development",
        "initial-access",
        "execution",
        "persistence",
        "privilege-escalation",
        "defense-evasion",
        "credential-access",
        "discovery",
        "lateral-movement",
        "collection",
        "command-and-control",
        "exfiltration",
        "impact",
    }
)
TECHNIQUE_TAG = "mitre-attack:"


def tracee_id(declared: int | None, event_id: int) -> int:
    """The ``eventId`` of an event with hostcore id ``event_id`` and Tracee id ``declared``."""
    return OUTSIDE_TRACEE + event_id if declared is None else declared


def murmur32(data: bytes) -> int:
    """MurmurHash3 x86 32-bit with Tracee's seed (common/murmur/murmur.go), for 4n bytes."""
    h = 0x18273645
    for (k,) in struct.iter_unpack("<I", data):  # Tracee reads each block in the CPU's order
        k = (k * 0xCC9E2D51) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        h ^= (k * 0x1B873593) & 0xFFFFFFFF
        h = ((h << 13) | (h >> 19)) & 0xFFFFFFFF
        h = (h * 5 + 0xE6546B64) & 0xFFFFFFFF
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def entity_id(task_id: int | None, start_time_ns: int | None) -> int:
    """Tracee's id of a task (pkg/datastores/process/taskid.go HashTaskID): a hash of its
    host id and its start time (ns since the epoch) cut to 0.1 s; 0 when either is unknown."""
    if not task_id or start_time_ns is None:
        return 0
    rounded = start_time_ns // 100_000_000 * 100_000_000
    return murmur32(struct.pack(">IQ", task_id, rounded))


def _value_type(value: Any) -> str:
    """A type Tracee reads ``value`` as, for a field that declared none (or one it cannot)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64" if value < 2**63 else "uint64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]string"
    return "map[string]int64" if isinstance(value, dict) else "unknown"


def _readable(declared: str, value: Any) -> bool:
    """Whether Tracee's Argument.UnmarshalJSON reads ``value`` under the type ``declared``:
    a number needs a sized type that holds it; ``[]string`` a list; its own structs, maps."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, int):
            low, high = _INTEGER_RANGES.get(declared, (1, 0))
            if declared.endswith("*"):  # a pointer, as Tracee's legacy C types say
                low, high = _INTEGER_RANGES["uint64"]
            if low <= value <= high:
                return True
        return abs(value) <= _FLOAT_LIMITS.get(declared, -1.0)
    if value is None:
        return True
    if declared == "[]string":
        return isinstance(value, list)
    return declared not in _STRUCT_TYPES


def _args(data: Mapping[str, Any], types: Mapping[str, str]) -> list[dict[str, Any]]:
    """``data`` as Tracee's args; a declared type Tracee cannot read the value under (it
    would reject the whole line) gives way to one it can."""
    args = []
    for name, value in data.items():
        declared = types.get(name)
        kind = declared if declared and _readable(declared, value) else _value_type(value)
        if isinstance(value, dict):  # a Go map: encoding/json sorts its keys
            value = dict(sorted(value.items()))
        args.append({"name": name, "type": kind, "value": value})
    return args


def _is_finding(data: Mapping[str, Any]) -> bool:
    # The core adds exactly these two to every finding (hostcore/signatures/runtime.py).
    return isinstance(data.get("signature"), Mapping) and isinstance(data.get("triggered_by"), list)


def metadata(signature: Mapping[str, Any]) -> dict[str, Any]:
    """The ``metadata`` of a finding, from hostcore's ``signature`` map, as findings.go's
    getMetadataFromSignatureMetadata fills it; a property nothing gives is null there too."""
    tags: Sequence[str] = signature["tags"]
    techniques = [tag[len(TECHNIQUE_TAG) :] for tag in tags if tag.startswith(TECHNIQUE_TAG)]
    properties = {
        "Category": next((tag for tag in tags if tag in TACTICS), None),
        "Technique": None,
        "external_id": techniques[0] if techniques else None,
        "id": None,
        **signature.get("properties", {}),
        "Severity": SEVERITIES[signature["severity"]],
        "signatureID": signature["id"],
        "signatureName": signature["name"],
    }
    return {
        "Version": signature["version"],
        "Description": signature["description"],
        "Tags": list(tags),
        "Properties": dict(sorted(properties.items())),
    }


def host_mount_namespace() -> int | None:
    """The host's mount namespace: pid 1's, or where pid 1 may not be looked at (as in
    some VMs' init) hostcore's own; None if neither can be read."""
    for path in ("/proc/1/ns/mnt", "/proc/self/ns/mnt"):
        try:
            return os.stat(path).st_ino
        except OSError:
            continue
    return None


class TraceeEvents:
    """Renders hostcore's event maps as Tracee's ``trace.Event``, with the field types and
    Tracee ids the run's events and signatures declare."""

    def __init__(self, specs: Iterable[EventSpec | SignatureSpec]) -> None:
        self._types: dict[str, dict[str, str]] = {}
        self._ids = {LOST_EVENTS_NAME: tracee_id(None, LOST_EVENTS_ID)}
        for spec in specs:
            self._types[spec.name] = {field.name: field.type for field in spec.fields}
            declared = spec.tracee_id if isinstance(spec, EventSpec) else None
            self._ids[spec.name] = tracee_id(declared, spec.id)
        self._host_mount_namespace = host_mount_namespace()
        self._entity_ids: BoundedCache[tuple[int | None, int | None], int] = BoundedCache(
            ENTITY_IDS_LIMIT
        )

    def _id(self, name: str, event_id: int) -> int:
        found = self._ids.get(name)
        return tracee_id(None, event_id) if found is None else found

    def _entity_id(self, task_id: int | None, start_time_ns: int | None) -> int:
        key = (task_id, start_time_ns)
        found = self._entity_ids.get(key)
        return self._entity_ids.put(key, entity_id(*key)) if found is None else found

    def _container_started(self, container_id: str, mount_ns: int | None) -> bool:
        """Tracee's contextFlags.containerStarted: a container whose entry point runs,
        which Tracee tells from an exec in a new mount namespace. Here: a container id,
        and a mount namespace not the host's (unknown counts as started, as containers
        older than Tracee do)."""
        if not container_id:
            return False
        host = self._host_mount_namespace
        return mount_ns is None or host is None or mount_ns != host

    def _finding_args(self, data: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
        """A finding's own fields, then ``detectedFrom``: the event that triggered it last,
        as findings.go's getArguments gives it (a Go map, so its keys sorted)."""
        own = {
            key: value for key, value in data.items() if key not in ("signature", "triggered_by")
        }
        args = _args(own, self._types.get(name, {}))
        source: Mapping[str, Any] = data["triggered_by"][-1]
        detected_from = {
            "args": _args(source["data"], self._types.get(source["name"], {})),
            "id": self._id(source["name"], source["id"]),
            "name": source["name"],
            "returnValue": 0,
        }
        return [*args, {"name": "detectedFrom", "type": "unknown", "value": detected_from}]

    def render(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """``event`` (the hostcore map) as a Tracee event."""
        context, data, name = event["context"], event["data"], event["name"]
        get = context.get  # maps built by hand (publish, the test kit) may lack the newer keys
        pid, tid, ppid = get("pid") or 0, get("tid") or 0, get("ppid") or 0
        container_id = get("container_id") or ""
        finding = _is_finding(data)
        args = self._finding_args(data, name) if finding else _args(data, self._types.get(name, {}))
        rendered = {
            "timestamp": event["timestamp"],
            "threadStartTime": get("start_time") or 0,
            "processorId": get("cpu") or 0,
            "processId": get("ns_pid") or 0,
            "cgroupId": get("cgroup_id") or 0,
            "threadId": get("ns_tid") or 0,
            "parentProcessId": get("ns_ppid") or 0,
            "hostProcessId": pid,
            "hostThreadId": tid,
            "hostParentProcessId": ppid,
            "userId": get("uid") or 0,
            "mountNamespace": get("mnt_ns") or 0,
            "pidNamespace": get("pid_ns") or 0,
            "processName": get("comm") or "",
            "executable": {"path": ""},
            "hostName": get("nodename") or event["host"],
            "containerId": container_id,
            "container": {"id": container_id} if container_id else {},
            "kubernetes": {},
            "eventId": str(self._id(name, event["id"])),
            "eventName": name,
            "matchedPolicies": [""],  # the one policy Tracee makes of command-line flags
            "argsNum": len(args),
            "returnValue": 0,
            "syscall": "",
            # Tracee's derived events (and findings, which copy them) have one zero address.
            "stackAddresses": None if name == LOST_EVENTS_NAME else [0],
            "contextFlags": {
                "containerStarted": self._container_started(container_id, get("mnt_ns")),
                "isCompat": False,
            },
            "threadEntityId": self._entity_id(tid, get("start_time")),
            "processEntityId": self._entity_id(pid, get("process_start_time")),
            "parentEntityId": self._entity_id(ppid, get("parent_start_time")),
            "args": args,
        }
        if finding:
            rendered["metadata"] = metadata(data["signature"])
        return rendered
