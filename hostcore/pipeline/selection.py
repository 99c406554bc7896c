"""Resolve the user's selectors (event, signature and set names) to what they declare."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from hostcore.events import Declared

D = TypeVar("D", bound=Declared)


class SelectionError(ValueError):
    """A selector names no event and no set."""


def event_sets(specs: Mapping[str, Declared]) -> dict[str, list[str]]:
    """Set name -> names of the events in it, ordered by event id."""
    sets: dict[str, list[str]] = {}
    for spec in sorted(specs.values(), key=lambda spec: spec.id):
        for name in spec.sets:
            sets.setdefault(name, []).append(spec.name)
    return sets


def resolve(specs: Mapping[str, D], selectors: Iterable[str]) -> list[D]:
    """The events ``selectors`` name, each once, ordered by id."""
    sets = event_sets(specs)
    chosen: set[str] = set()
    for selector in selectors:
        if selector in specs:
            chosen.add(selector)
        elif selector in sets:
            chosen.update(sets[selector])
        else:
            raise SelectionError(
                f"unknown event or event set {selector!r}; events: "
                f"{', '.join(sorted(specs)) or '(none installed)'}; "
                f"sets: {', '.join(sorted(sets)) or '(none)'} (see 'hostcore events')"
            )
    return sorted((specs[name] for name in chosen), key=lambda spec: spec.id)
