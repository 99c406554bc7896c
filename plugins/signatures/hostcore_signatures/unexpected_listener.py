"""unexpected_listener: an incoming connection to a local port not on an allow-list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hostcore import BoundedMap, Field, Report, SignatureContext, SignatureSpec, number_option
from hostcore_signatures import options

ALLOWED_PORTS = [22, 80, 443]
QUIET_S = 60.0
MAX_LISTENERS = 4096


class UnexpectedListener:
    """Reports a listener (local address and port) once per quiet period, not per connection."""

    def __init__(self, context: SignatureContext) -> None:
        self._allowed = options.ports(context.options, "allowed_ports", ALLOWED_PORTS)
        quiet_s = number_option(context.options, "quiet_s", QUIET_S, options.MIN_WINDOW_S)
        quiet_ns = int(quiet_s * 10**9)
        self._reported: BoundedMap[tuple[str, int], bool] = BoundedMap(MAX_LISTENERS, quiet_ns)
        self._count = context.count

    def on_event(self, event: Mapping[str, Any], report: Report) -> None:
        data, now_ns = event["data"], event["timestamp"]
        port = data["dst_port"]
        if port in self._allowed:
            return
        listener = (data["dst"], port)
        if self._reported.get(listener, now_ns):
            self._count("unexpected_listener.repeats", 1)
            return
        evictions = self._reported.evictions
        self._reported.put(listener, True, now_ns)
        if self._reported.evictions > evictions:  # that listener may be reported again early
            self._count("unexpected_listener.listener_evictions", 1)
        report({"dst": data["dst"], "dst_port": port, "src": data["src"]}, [event])


SPEC = SignatureSpec(
    name="unexpected_listener",
    id=6003,
    signature_id="HCS-3",
    title="Incoming connection to an unexpected port",
    version="1.0.0",
    severity="medium",
    description="A peer connected to a local port that is not on the allow-list "
    "(reported once per listener per quiet_s)",
    consumes=("net_flow_tcp_begin.data.conn_direction=incoming",),
    handler=UnexpectedListener,
    fields=(Field("dst", "string"), Field("dst_port", "uint16"), Field("src", "string")),
    tags=("mitre-attack:T1571", "command-and-control"),
    properties={
        "Technique": "Non-Standard Port",
        "id": "attack-pattern--b18eae87-b469-4e14-b454-b171b416bc18",
    },
    options={
        "allowed_ports": f"local ports that may accept connections (default {ALLOWED_PORTS})",
        "quiet_s": f"seconds before one listener is reported again (default {QUIET_S:g})",
    },
)
