"""Which events each signature consumes: checked when plugins load, resolved for a run.

Rules: a selector in ``consumes`` that names no installed event or signature,
or whose data filter does not parse, keeps the signature from loading; so do a
cycle of signatures consuming each other's findings and a chain deeper than
MAX_DEPTH. A signature that consumes one that cannot load cannot load either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hostcore.events import EventSpec
from hostcore.pipeline.filters import (
    DataFilter,
    FilterError,
    Test,
    data_filter,
    data_tests,
    parse_selector,
)
from hostcore.signatures.spec import SignatureSpec

MAX_DEPTH = 4  # signatures in a chain: one consuming events, three more consuming findings

Catalogue = Mapping[str, EventSpec | SignatureSpec]


class SignatureError(ValueError):
    """A signature cannot be used; the message says why."""


@dataclass(frozen=True)
class Enabled:
    """A signature of a run: what it consumes (name -> a test on the data, or None: all
    pass) and its options from the config file."""

    spec: SignatureSpec
    consumes: Mapping[str, Test | None]
    options: Mapping[str, Any] = field(default_factory=dict)


def subscriptions(spec: SignatureSpec, catalogue: Catalogue) -> dict[str, Test | None]:
    """Consumed event or signature name -> the test its data must pass (None: all pass)."""
    names: set[str] = set()
    filters: list[DataFilter] = []
    optional = [(text, False) for text in spec.consumes_if_installed]
    for text, required in [*((text, True) for text in spec.consumes), *optional]:
        name, filter_text = parse_selector(text)
        if name not in catalogue:
            if required:
                raise SignatureError(f"consumes {name!r}, which no installed plugin provides")
            continue
        names.add(name)
        if filter_text is not None:
            try:
                filters.append(data_filter(name, filter_text, catalogue))
            except FilterError as error:
                raise SignatureError(f"consumes {text!r}: {error}") from None
    if not names:
        raise SignatureError("consumes nothing that is installed")
    tests = data_tests(filters)
    return {name: tests.get(name) for name in sorted(names)}


def problems(
    signatures: Mapping[str, SignatureSpec], events: Mapping[str, EventSpec]
) -> dict[str, str]:
    """Why each signature that cannot load cannot, by signature name."""
    found: dict[str, str] = {}
    while True:
        usable = {name: spec for name, spec in signatures.items() if name not in found}
        new = _selector_problems(usable, events) or _graph_problems(usable)
        if not new:
            return found
        found.update(new)


def _selector_problems(
    signatures: Mapping[str, SignatureSpec], events: Mapping[str, EventSpec]
) -> dict[str, str]:
    catalogue: dict[str, EventSpec | SignatureSpec] = {**events, **signatures}
    found = {}
    for spec in signatures.values():
        try:
            subscriptions(spec, catalogue)
        except SignatureError as error:
            found[spec.name] = str(error)
    return found


class _Cycle(Exception):
    def __init__(self, path: list[str]) -> None:
        self.path = path


def _graph_problems(signatures: Mapping[str, SignatureSpec]) -> dict[str, str]:
    """Cycles (every member is named) and chains deeper than MAX_DEPTH."""
    depths: dict[str, int] = {}

    def depth(name: str, path: list[str]) -> int:
        if name in path:
            raise _Cycle([*path[path.index(name) :], name])
        if name not in depths:
            spec = signatures[name]
            consumed = [parse_selector(text)[0] for text in spec.consumes]
            consumed += [parse_selector(text)[0] for text in spec.consumes_if_installed]
            inner = [depth(c, [*path, name]) for c in consumed if c in signatures]
            depths[name] = 1 + max(inner, default=0)
        return depths[name]

    found = {}
    for name in signatures:
        try:
            levels = depth(name, [])
        except _Cycle as cycle:
            chain = " -> ".join(cycle.path)
            return {member: f"is in a cycle of signatures: {chain}" for member in cycle.path}
        if levels > MAX_DEPTH:
            found[name] = (
                f"is at the end of a chain of {levels} signatures consuming findings "
                f"(at most {MAX_DEPTH})"
            )
    return found


def enable(
    chosen: Iterable[SignatureSpec],
    catalogue: Catalogue,
    options: Mapping[str, Mapping[str, Any]],
) -> list[Enabled]:
    """The chosen signatures and every signature whose findings they consume, by id.

    ``options`` holds the config file's tables by signature name.
    """
    enabled: dict[str, Enabled] = {}
    pending = list(chosen)
    while pending:
        spec = pending.pop()
        if spec.name in enabled:
            continue
        consumes = subscriptions(spec, catalogue)
        enabled[spec.name] = Enabled(spec, consumes, options.get(spec.name, {}))
        for name in consumes:
            consumed = catalogue[name]
            if isinstance(consumed, SignatureSpec):
                pending.append(consumed)
    return sorted(enabled.values(), key=lambda item: item.spec.id)
