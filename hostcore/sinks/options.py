"""Checks of option values that more than one sink shares."""

from __future__ import annotations

from hostcore.sinks.base import SinkOptionError


def flag(name: str, text: str) -> bool:
    """``true`` or ``false``, nothing else: a typo must not turn a feature off unseen."""
    if text not in ("true", "false"):
        raise SinkOptionError(f"{name} must be true or false, got {text!r}")
    return text == "true"
