"""Read a JSON line as Tracee v0.24.1 reads it, field by field, or say why Tracee would not.

`tracee-rules --input-tracee file:F --input-tracee format:json` (cmd/tracee-rules/input.go)
and `tracee analyze` (pkg/analyze/analyze.go) read each line with a bufio.Scanner
(lines under 64 KiB) and decode it with Go's json.Unmarshal into types/trace/trace.go's
``Event``, whose ``Argument.UnmarshalJSON`` decodes each arg with json.Number. A line
either rejects is dropped by tracee-rules and stops tracee analyze. This module follows
those rules (Go's encoding/json for each field's Go type, then UnmarshalJSON's own
switch on the arg type) and raises ``Rejected`` where Go returns an error; it returns
the decoded Event as a dict keyed by JSON name, Go's zero value for absent keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

MAX_LINE = 64 * 1024  # bufio.MaxScanTokenSize: a longer line is bufio.ErrTooLong
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)\Z")


class Rejected(ValueError):
    """Tracee would not read the line; the message is Go's reason, near enough."""


class Number(str):
    """A JSON number as written (Go's json.Number): Go parses it only once it knows the type."""


Decode = Callable[[Any, str], Any]


def _kind(value: Any) -> str:
    """What Go's errors call a JSON value: number, string, bool, array, object."""
    if isinstance(value, Number):
        return f"number {value}"
    return {str: "string", bool: "bool", list: "array", dict: "object"}[type(value)]


def _integer(low: int, high: int, go_type: str) -> Decode:
    def decode(value: Any, where: str) -> int:
        if value is None:  # null leaves Go's zero value
            return 0
        if not isinstance(value, Number) or not _INTEGER.match(value):
            raise Rejected(f"cannot unmarshal {_kind(value)} into {where} of type {go_type}")
        number = int(value)
        if not low <= number <= high:
            raise Rejected(f"cannot unmarshal number {value} into {where} of type {go_type}")
        return number

    return decode


INT = _integer(-(2**63), 2**63 - 1, "int")  # Go's int on the 64-bit machines Tracee runs on
UINT = _integer(0, 2**64 - 1, "uint")
UINT32 = _integer(0, 2**32 - 1, "uint32")
UINT64 = _integer(0, 2**64 - 1, "uint64")


def go_string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or isinstance(value, Number):
        raise Rejected(f"cannot unmarshal {_kind(value)} into {where} of type string")
    return value


def go_bool(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise Rejected(f"cannot unmarshal {_kind(value)} into {where} of type bool")
    return value


def go_int_in_string(value: Any, where: str) -> int:  # `json:",string"` on an int
    if value is None:
        return 0
    if isinstance(value, Number) or not isinstance(value, str):
        raise Rejected(f"invalid use of ,string struct tag, trying to unmarshal {where} unquoted")
    return INT(Number(value), where)


def slice_of(element: Decode, go_type: str) -> Decode:
    def decode(value: Any, where: str) -> list[Any] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise Rejected(f"cannot unmarshal {_kind(value)} into {where} of type {go_type}")
        return [element(item, where) for item in value]

    return decode


def struct(go_type: str, fields: dict[str, Decode], pointer: bool = False) -> Decode:
    """A Go struct: keys matched to fields exactly, else ignoring case; others ignored."""

    def decode(value: Any, where: str) -> dict[str, Any] | None:
        if value is None:
            return None if pointer else {name: field(None, where) for name, field in fields.items()}
        if not isinstance(value, dict):
            raise Rejected(f"cannot unmarshal {_kind(value)} into {where} of type {go_type}")
        decoded = {name: field(None, where) for name, field in fields.items()}
        folded = {name.lower(): name for name in fields}
        for key, item in value.items():
            name = key if key in fields else folded.get(key.lower())
            if name is not None:
                decoded[name] = fields[name](item, f"Go struct field {go_type}.{name}")
        return decoded

    return decode


def _plain(value: Any, use_number: bool = False) -> Any:
    """interface{} as json.Unmarshal fills it: numbers become float64, or with UseNumber
    (as Argument.UnmarshalJSON decodes) stay json.Number, here the int or float it says."""
    if isinstance(value, Number):
        return (
            (int(value) if _INTEGER.match(value) else float(value)) if use_number else float(value)
        )
    if isinstance(value, list):
        return [_plain(item, use_number) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item, use_number) for key, item in value.items()}
    return value


def go_map_of_any(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Rejected(f"cannot unmarshal {_kind(value)} into {where} of type map[string]any")
    return _plain(value)


# Argument.UnmarshalJSON: how a JSON number is read, by the arg's type (others are errors).
_NUMBER_TYPES: dict[str, Decode] = {
    "trace.Pointer": UINT64,
    "int32": _integer(-(2**31), 2**31 - 1, "int32"),
    "int64": _integer(-(2**63), 2**63 - 1, "int64"),
    "uint32": UINT32,
    "uint64": UINT64,
    "uint16": _integer(0, 2**16 - 1, "uint16"),
    "int8": _integer(-(2**7), 2**7 - 1, "int8"),
    "uint8": _integer(0, 2**8 - 1, "uint8"),
}
_FLOAT_LIMITS = {"float": 3.4028234663852886e38, "float64": 1.7976931348623157e308}
# Types UnmarshalJSON decodes into Tracee's own structs (ProtoIPv4 and the like): each
# with rules of its own that this reader does not follow, as no hostcore value is one.
_STRUCT_TYPE = re.compile(r"(\[\])?trace\.(Proto|PktMeta|PacketMetadata|Dns)")


def _go_sprint(value: Any) -> str:
    """fmt.Sprint of a decoded JSON value, as UnmarshalJSON turns a []string's items."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    return str(value)  # a Number as written; Go prints a list or map otherwise than Python


def _number_arg(arg: dict[str, Any], number: Number) -> Any:
    kind, where = arg["type"], f"argument {arg['name']}"
    if kind.endswith("*"):  # legacy C pointer types: read as trace.Pointer
        arg["type"] = "trace.Pointer"
        return _NUMBER_TYPES["trace.Pointer"](number, where)
    if kind in _NUMBER_TYPES:
        return _NUMBER_TYPES[kind](number, where)
    if kind in _FLOAT_LIMITS:
        value = float(number)
        if abs(value) > _FLOAT_LIMITS[kind]:
            raise Rejected(f"{where}: value out of range for {kind}")
        return value
    raise Rejected(f"unrecognized argument type {kind} of argument {arg['name']}")


def go_argument(value: Any, where: str) -> dict[str, Any]:
    """types/trace/trace.go Argument.UnmarshalJSON."""
    raw = struct("argument", {"name": go_string, "type": go_string, "value": lambda v, w: v})(
        value, where
    )
    assert raw is not None
    arg = dict(raw)
    if arg["value"] is None:
        return arg
    if isinstance(arg["value"], Number):
        arg["value"] = _number_arg(arg, arg["value"])
    elif arg["type"] == "[]string":
        if not isinstance(arg["value"], list):
            raise Rejected("[]string: type error")
        arg["value"] = [_go_sprint(item) for item in arg["value"]]
    elif _STRUCT_TYPE.match(arg["type"]):
        raise Rejected(f"{arg['type']} (argument {arg['name']}): not modelled by this reader")
    else:
        arg["value"] = _plain(arg["value"], use_number=True)
    return arg


EVENT = struct(
    "Event",
    {
        "timestamp": INT,
        "threadStartTime": INT,
        "processorId": INT,
        "processId": INT,
        "cgroupId": UINT,
        "threadId": INT,
        "parentProcessId": INT,
        "hostProcessId": INT,
        "hostThreadId": INT,
        "hostParentProcessId": INT,
        "userId": INT,
        "mountNamespace": INT,
        "pidNamespace": INT,
        "processName": go_string,
        "executable": struct("File", {"path": go_string}),
        "hostName": go_string,
        "containerId": go_string,
        "container": struct(
            "Container",
            {"id": go_string, "name": go_string, "image": go_string, "imageDigest": go_string},
        ),
        "kubernetes": struct(
            "Kubernetes",
            {
                "podName": go_string,
                "podNamespace": go_string,
                "podUID": go_string,
                "podSandbox": go_bool,
            },
        ),
        "eventId": go_int_in_string,
        "eventName": go_string,
        "matchedPolicies": slice_of(go_string, "[]string"),
        "argsNum": INT,
        "returnValue": INT,
        "syscall": go_string,
        "stackAddresses": slice_of(UINT64, "[]uint64"),
        "contextFlags": struct("ContextFlags", {"containerStarted": go_bool, "isCompat": go_bool}),
        "threadEntityId": UINT32,
        "processEntityId": UINT32,
        "parentEntityId": UINT32,
        "args": slice_of(go_argument, "[]trace.Argument"),
        "metadata": struct(
            "Metadata",
            {
                "Version": go_string,
                "Description": go_string,
                "Tags": slice_of(go_string, "[]string"),
                "Properties": go_map_of_any,
            },
            pointer=True,
        ),
    },
)


def _no_constant(name: str) -> Any:
    raise Rejected(f"invalid character {name[0]!r} looking for beginning of value")


def decode_line(line: str) -> dict[str, Any]:
    """The trace.Event that Tracee reads from one line of JSON (without its newline)."""
    if len(line.encode()) >= MAX_LINE:
        raise Rejected("bufio.Scanner: token too long")
    try:
        value = json.loads(line, parse_int=Number, parse_float=Number, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise Rejected(f"invalid JSON: {error}") from error
    event = EVENT(value, "Event")
    assert event is not None
    return event


def origin(event: dict[str, Any]) -> str:
    """trace.Event.Origin(): what a signature's selector matches."""
    if event["contextFlags"]["containerStarted"]:
        return "container"
    return "container-init" if event["container"]["id"] else "host"
