"""Entry point of the hostcore-net-flow distribution."""

from __future__ import annotations

from collections.abc import Callable

from hostcore import EventSpec, hookimpl
from hostcore_net_flow import begin, end, failed


@hookimpl
def hostcore_register_events(register: Callable[[EventSpec], None]) -> None:
    for spec in (begin.SPEC, end.SPEC, failed.SPEC):
        register(spec)
