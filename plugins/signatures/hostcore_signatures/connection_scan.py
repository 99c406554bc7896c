"""connection_scan: one process starting connections to many ports or hosts in a short time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hostcore import (
    BoundedMap,
    Field,
    Report,
    SignatureContext,
    SignatureSpec,
    number_option,
    whole_number_option,
)
from hostcore_signatures import options

MAX_DISTINCT = 20
WINDOW_S = 10.0
MAX_PROCESSES = 4096


class Window:
    """The distinct destination ports and hosts of one process within a sliding window.

    Holds at most ``limit + 1`` of each: crossing the limit is reported once,
    then the process is quiet for one window (a long scan gives one finding
    per window, not one per port).
    """

    def __init__(self, limit: int, window_ns: int) -> None:
        self._limit = limit
        self._window_ns = window_ns
        self.ports: BoundedMap[int, None] = BoundedMap(limit + 1, window_ns)
        self.hosts: BoundedMap[str, None] = BoundedMap(limit + 1, window_ns)
        self._quiet_until_ns = 0

    def crossed(self, host: str, port: int, now_ns: int) -> bool:
        """Add one connection; True when it takes the ports or hosts over the limit."""
        if now_ns < self._quiet_until_ns:
            return False
        self.ports.put(port, None, now_ns)
        self.hosts.put(host, None, now_ns)
        return len(self.ports) > self._limit or len(self.hosts) > self._limit

    def restart(self, now_ns: int) -> None:
        self.ports.clear()
        self.hosts.clear()
        self._quiet_until_ns = now_ns + self._window_ns


class ConnectionScan:
    """Counts, per process, the distinct ports and hosts its connections went to.

    Without a process (a replayed capture), per source address instead.
    """

    def __init__(self, context: SignatureContext) -> None:
        self._count = context.count
        self._limit = whole_number_option(context.options, "max_distinct", MAX_DISTINCT)
        self._window_s = number_option(context.options, "window_s", WINDOW_S, options.MIN_WINDOW_S)
        self._window_ns = int(self._window_s * 10**9)
        capacity = whole_number_option(context.options, "max_processes", MAX_PROCESSES)
        self._processes: BoundedMap[tuple[object, ...], Window] = BoundedMap(
            capacity, self._window_ns
        )

    def on_event(self, event: Mapping[str, Any], report: Report) -> None:
        context, data, now_ns = event["context"], event["data"], event["timestamp"]
        pid = context["pid"]
        key = ("address", data["src"]) if pid is None else ("process", pid, context["comm"])
        window = self._processes.get(key, now_ns) or Window(self._limit, self._window_ns)
        evictions = self._processes.evictions
        self._processes.put(key, window, now_ns)
        if self._processes.evictions > evictions:
            self._count("connection_scan.process_evictions", 1)
        if window.crossed(data["dst"], data["dst_port"], now_ns):
            finding = {
                "distinct_ports": sorted(window.ports.keys()),
                "distinct_hosts": sorted(window.hosts.keys()),
                "window_s": self._window_s,
            }
            window.restart(now_ns)
            report(finding, [event])


SPEC = SignatureSpec(
    name="connection_scan",
    id=6002,
    signature_id="HCS-2",
    title="Connection scan",
    version="1.0.0",
    severity="medium",
    description="One process started connections to more than max_distinct distinct ports "
    "or hosts within window_s seconds (connections that began, and failed ones where "
    "net_flow_tcp_failed is installed)",
    consumes=("net_flow_tcp_begin.data.conn_direction=outgoing",),
    consumes_if_installed=("net_flow_tcp_failed.data.conn_direction=outgoing",),
    handler=ConnectionScan,
    fields=(
        Field("distinct_ports", "[]uint16"),
        Field("distinct_hosts", "[]string"),
        Field("window_s", "float64"),
    ),
    tags=("mitre-attack:T1046", "discovery"),
    properties={
        "Technique": "Network Service Discovery",
        "id": "attack-pattern--e3a12395-188d-4051-9a16-ea8e14d07b88",
    },
    options={
        "max_distinct": f"more distinct ports or hosts than this is a scan "
        f"(default {MAX_DISTINCT})",
        "window_s": f"within this many seconds (default {WINDOW_S:g})",
        "max_processes": f"processes tracked at once; the least recent go first "
        f"(default {MAX_PROCESSES})",
    },
)
