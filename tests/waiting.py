"""Waiting in tests: how long a process may take to be ready, and polling for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

READY_TIMEOUT_S = 60

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout_s: float = 30) -> T:
    """Poll ``condition`` until it returns something true, and return that; fail naming
    ``what`` if it does not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result
