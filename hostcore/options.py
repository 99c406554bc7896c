"""Checking the options users give plugins: one error type and one reading of each kind.

Sinks, monitors and events get their options as text (``--sink NAME:key=value`` or a
config table); signatures get the config file's TOML values. Both read the same way.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Mapping
from typing import Any

Address = tuple[int, Any]
"""A socket family and the address to connect or bind to: a path, or (host, port)."""


class OptionError(ValueError):
    """An option a plugin cannot use; the message names it and says what it takes.

    Raised from a sink's or monitor's opener, or an event's or signature's handler:
    the run stops before anything is attached, naming the plugin and the message.
    """


def number_option(
    options: Mapping[str, object], name: str, default: float, minimum: float
) -> float:
    """Option ``name`` as a finite number of at least ``minimum`` (``default`` if unset)."""
    given = options.get(name, default)
    value = _as_float(given)
    if value is None or not minimum <= value < math.inf:
        raise OptionError(f"{name} must be a number >= {minimum:g}, got {given!r}")
    return value


def whole_number_option(
    options: Mapping[str, object], name: str, default: int, minimum: int = 1
) -> int:
    """Option ``name`` as a whole number of at least ``minimum`` (``default`` if unset)."""
    given = options.get(name, default)
    value = _as_int(given)
    if value is None or value < minimum:
        raise OptionError(f"{name} must be a whole number >= {minimum}, got {given!r}")
    return value


def flag_option(options: Mapping[str, object], name: str, default: bool = False) -> bool:
    """Option ``name`` as ``true`` or ``false``, nothing else: a typo must not turn a
    feature off unseen (``default`` if unset)."""
    given = options.get(name, default)
    if isinstance(given, bool):
        return given
    if given not in ("true", "false"):
        raise OptionError(f"{name} must be true or false, got {given!r}")
    return given == "true"


def _as_float(value: object) -> float | None:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _as_int(value: object) -> int | None:
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.lstrip("-").isdecimal() else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_address(text: str, unix: bool = True) -> Address:
    """``HOST:PORT``, ``[IPv6]:PORT`` or, if ``unix``, ``unix:PATH``; OptionError if not."""
    if unix and text.startswith("unix:"):
        if not text[5:]:
            raise OptionError("address unix: needs a path, e.g. unix:/run/collector.sock")
        return socket.AF_UNIX, text[5:]
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdecimal() or int(port) > 0xFFFF:
        forms = "unix:PATH, HOST:PORT or [IPv6]:PORT" if unix else "HOST:PORT or [IPv6]:PORT"
        raise OptionError(f"address {text!r}: expected {forms}")
    if host.startswith("[") and host.endswith("]"):
        return socket.AF_INET6, (host[1:-1], int(port))
    return socket.AF_INET, (host, int(port))
