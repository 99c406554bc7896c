"""Options from a ``[signatures.NAME]`` table, checked, with defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def number(options: Mapping[str, Any], name: str, default: float) -> float:
    """A number > 0."""
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"option {name!r} must be a number > 0, got {value!r}")
    return float(value)


def count(options: Mapping[str, Any], name: str, default: int) -> int:
    """An integer >= 1."""
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"option {name!r} must be an integer >= 1, got {value!r}")
    return value


def strings(options: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = options.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"option {name!r} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def ports(options: Mapping[str, Any], name: str, default: list[int]) -> frozenset[int]:
    value = options.get(name, default)
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) and 0 < item < 65536 for item in value
    ):
        raise ValueError(f"option {name!r} must be a list of port numbers, got {value!r}")
    return frozenset(value)
