"""Scope filters (on an event's context) and data filters (on its data), as Tracee writes them.

Scope: ``comm=curl``, ``pid!=1,2``, ``uid=1000``, ``cgroup=/system.slice`` (that
cgroup or below) or ``cgroup=ID``, ``container`` (any), ``!container``,
``container=ID`` (or a prefix of it). Data: ``EVENT.data.FIELD=VALUE`` or ``!=``.
Values are comma-separated (any may match; with ``!=``, none may); a value may
start or end with ``*`` to match a suffix or a prefix. Different filters must
all pass. A field whose value is unknown (null) never passes a filter.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hostcore.events import Declared

Test = Callable[[Mapping[str, Any]], bool]

_EXPRESSION = re.compile(r"(?P<field>[a-z_][a-z0-9_]*)(?P<op>!=|=)(?P<values>.+)")
_NUMERIC_TYPES = {"int", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
SCOPE_FIELDS = {"comm": "string", "pid": "uint32", "uid": "uint32", "cgroup": "", "container": ""}


class FilterError(ValueError):
    """A filter that cannot be parsed or names no field; the message shows the syntax."""


@dataclass(frozen=True)
class Match:
    """``field`` compared with ``values``: any of them (``=``) or none of them (``!=``)."""

    field: str
    values: tuple[Any, ...]
    negate: bool
    # The values as a set when none has a wildcard: one lookup per scalar (filters run per event).
    exact: frozenset[Any] | None = dataclasses.field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        wildcard = any(isinstance(v, str) and (v[:1] == "*" or v[-1:] == "*") for v in self.values)
        object.__setattr__(self, "exact", None if wildcard else frozenset(self.values))

    def __call__(self, values: Mapping[str, Any]) -> bool:
        """Whether ``values[field]`` passes (a list passes if any of its items matches)."""
        value = values.get(self.field)
        if value is None:
            return False
        if self.exact is not None and not isinstance(value, list):
            return (value in self.exact) != self.negate
        if isinstance(value, list):
            hit = any(_equal(item, wanted) for item in value for wanted in self.values)
        else:
            hit = any(_equal(value, wanted) for wanted in self.values)
        return hit != self.negate


@dataclass(frozen=True)
class _All:
    tests: tuple[Test, ...]

    def __call__(self, values: Mapping[str, Any]) -> bool:
        return all(test(values) for test in self.tests)


@dataclass(frozen=True)
class _InContainer:
    """``container`` / ``!container``; an unknown cgroup is neither."""

    wanted: bool

    def __call__(self, context: Mapping[str, Any]) -> bool:
        container = context.get("container_id")
        return container is not None and bool(container) is self.wanted


def _equal(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, str) and isinstance(value, str):
        if wanted.endswith("*") and wanted.startswith("*") and len(wanted) > 1:
            return wanted[1:-1] in value
        if wanted.endswith("*"):
            return value.startswith(wanted[:-1])
        if wanted.startswith("*"):
            return value.endswith(wanted[1:])
    return bool(value == wanted)


def _values(text: str, field: str, kind: str, where: str) -> tuple[Any, ...]:
    values = [value for value in text.split(",") if value]
    if not values:
        raise FilterError(f"{where}: no value to compare {field!r} with")
    if kind in _NUMERIC_TYPES:
        try:
            return tuple(int(value, 0) for value in values)
        except ValueError:
            raise FilterError(f"{where}: {field!r} is a number, got {text!r}") from None
    return tuple(values)


def _split(text: str, where: str) -> tuple[str, str, str]:
    match = _EXPRESSION.fullmatch(text)
    if not match:
        raise FilterError(f"{where}: expected FIELD=VALUE[,VALUE...] or FIELD!=VALUE[,...]")
    return match["field"], match["op"], match["values"]


def scope(expressions: Iterable[str], cgroup_path: Callable[[int], str | None]) -> Test | None:
    """A test on an event's context, or None if there are no scope filters."""
    tests: list[Test] = []
    for text in expressions:
        where = f"scope {text!r}"
        if text in ("container", "!container"):
            tests.append(_InContainer(text == "container"))
            continue
        field, op, raw = _split(text, where)
        if field not in SCOPE_FIELDS:
            known = ", ".join([*SCOPE_FIELDS, "!container"])
            raise FilterError(f"{where}: unknown scope {field!r} (known: {known})")
        if field == "cgroup":
            tests.append(_cgroup_test(raw, op == "!=", cgroup_path))
            continue
        match = Match(field, _values(raw, field, SCOPE_FIELDS[field], where), op == "!=")
        if field == "container":
            match = Match("container_id", tuple(f"{v}*" for v in match.values), match.negate)
        tests.append(match)
    return _All(tuple(tests)) if tests else None


def _cgroup_test(raw: str, negate: bool, cgroup_path: Callable[[int], str | None]) -> Test:
    """``cgroup=ID`` is that cgroup; ``cgroup=PATH`` that cgroup or any below it."""
    ids = {int(value) for value in raw.split(",") if value.isdigit()}
    # As directories: "/a/b/" holds "/a/b/" and "/a/b/c/"; "system.slice" means "/system.slice".
    prefixes = [
        "".join(f"/{part}" for part in value.split("/") if part) + "/"
        for value in raw.split(",")
        if value and not value.isdigit()
    ]

    def inside(context: Mapping[str, Any]) -> bool:
        cgroup_id = context.get("cgroup_id")
        if cgroup_id is None:
            return False
        hit = cgroup_id in ids
        if not hit and prefixes:
            path = cgroup_path(cgroup_id)
            if path is None:
                return False  # unknown passes no filter
            hit = any((path.rstrip("/") + "/").startswith(prefix) for prefix in prefixes)
        return hit != negate

    return inside


@dataclass(frozen=True)
class DataFilter:
    event: str
    match: Match


def parse_selector(text: str) -> tuple[str, str | None]:
    """An ``--events`` item: (event or set name, data filter text or None)."""
    name, separator, rest = text.partition(".data.")
    return name, (rest if separator else None)


def data_filter(event: str, text: str, specs: Mapping[str, Declared]) -> DataFilter:
    """Parse ``FIELD=VALUES`` for ``event``, checked against the event's declared fields."""
    where = f"filter {event}.data.{text!r}"
    if "," in event:
        raise FilterError(f"{where}: a data filter takes a whole --events flag of its own")
    if event not in specs:
        raise FilterError(f"{where}: data filters apply to events, and {event!r} is not one")
    field, op, raw = _split(text, where)
    kinds = {f.name: f.type for f in specs[event].fields}
    if field not in kinds:
        raise FilterError(
            f"{where}: {event} has no field {field!r} (its fields: {', '.join(kinds)})"
        )
    return DataFilter(event, Match(field, _values(raw, field, kinds[field], where), op == "!="))


def data_tests(filters: Sequence[DataFilter]) -> dict[str, Test]:
    """Event name -> a test on its data that every filter for it must pass."""
    by_event: dict[str, list[Match]] = {}
    for data in filters:
        by_event.setdefault(data.event, []).append(data.match)
    return {
        event: matches[0] if len(matches) == 1 else _All(tuple(matches))
        for event, matches in by_event.items()
    }


def kernel_scope(expressions: Iterable[str]) -> list[str]:
    """Compile flags for the scope filters the probe can apply itself (see bpf/).

    Those are the ``=`` forms of uid, pid and cgroup ids: records that fail them
    never leave the kernel. Cgroup paths stay in user space (a path's cgroup is
    recreated with a new id when its unit or container restarts), and so does
    everything else; user space tests these again too.
    """
    owner_tests, cgroup_tests = [], []
    for text in expressions:
        match = _EXPRESSION.fullmatch(text)
        if not match or match["op"] != "=":
            continue
        field, values = match["field"], [v for v in match["values"].split(",") if v]
        if field in ("uid", "pid"):
            numbers = _values(match["values"], field, "uint32", f"scope {text!r}")
            owner_tests.append(" || ".join(f"(o)->{field} == {n}" for n in numbers))
        elif field == "cgroup" and all(value.isdigit() for value in values):
            cgroup_tests.append(" || ".join(f"bpf_skb_cgroup_id(skb) == {v}" for v in values))
    flags = []
    if owner_tests:
        flags.append(f"-DSCOPE_OWNER(o)=({' && '.join(f'({t})' for t in owner_tests)})")
    if cgroup_tests:
        flags.append(f"-DSCOPE_CGROUP(skb)=({' && '.join(f'({t})' for t in cgroup_tests)})")
    return flags
