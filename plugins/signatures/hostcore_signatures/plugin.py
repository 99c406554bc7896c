"""Entry point of the hostcore-signatures distribution."""

from __future__ import annotations

from collections.abc import Callable

from hostcore import SignatureSpec, hookimpl
from hostcore_signatures import connection_scan, denied_domain, unexpected_listener


@hookimpl
def hostcore_register_signatures(register: Callable[[SignatureSpec], None]) -> None:
    register(denied_domain.SPEC)
    register(connection_scan.SPEC)
    register(unexpected_listener.SPEC)
