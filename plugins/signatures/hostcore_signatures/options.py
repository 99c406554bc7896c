"""Options from a ``[signatures.NAME]`` table that hostcore has no reader for: lists.

Numbers are read with hostcore's ``number_option`` and ``whole_number_option``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hostcore import OptionError

MIN_WINDOW_S = 0.001  # a window, or a quiet period, of at least a millisecond


def strings(options: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = options.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise OptionError(f"{name} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def ports(options: Mapping[str, Any], name: str, default: list[int]) -> frozenset[int]:
    value = options.get(name, default)
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) and 0 < item < 65536 for item in value
    ):
        raise OptionError(f"{name} must be a list of port numbers, got {value!r}")
    return frozenset(value)
