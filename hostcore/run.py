"""``hostcore run``: attach the probe, feed the pipeline until a signal, report totals."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Mapping

import structlog

from hostcore import probe
from hostcore.config import Config
from hostcore.gc_tuning import streaming_collection
from hostcore.monitors import Monitor
from hostcore.packet import OpenSocket, Owner, PacketKind
from hostcore.pipeline import filters
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.context import Contexts
from hostcore.pipeline.pipeline import Pipeline, PipelineOptions
from hostcore.plan import Plan, RunError, plan
from hostcore.plugins import Plugins
from hostcore.probe import capabilities, cgroup, sockets
from hostcore.probe.cgroup import CgroupIndex
from hostcore.probe.clock import boot_to_epoch_offset_ns
from hostcore.probe.records import RecordReader
from hostcore.selections import (
    Wanted,
    check_outputs,
    close_monitors,
    closing_on_error,
    open_monitors,
    open_sinks,
)
from hostcore.sinks.output import request_reopen

LOSS_CHECK_INTERVAL_NS = 10**9

log = structlog.get_logger()


def pipeline_of(
    the_plan: Plan,
    config: Config,
    accounting: Accounting,
    queue_sizes: Mapping[str, int],
    contexts: Contexts | None = None,
    scope: filters.Test | None = None,
    sinks_wait: bool = False,
) -> Pipeline:
    """The planned events' handlers and signatures, started; no sink yet."""
    options = PipelineOptions(
        host=config.host_name,
        dns=config.dns,
        scope=scope,
        data_filters=filters.data_tests(the_plan.data_filters),
        published=the_plan.published,
        event_options=config.event_options,
        output_format=config.format,
        queue_sizes=queue_sizes,
        drain_timeout_s=config.sink_drain_timeout_s,
        sinks_wait=sinks_wait,
    )
    return Pipeline(the_plan.events, the_plan.signatures, accounting, options, contexts)


def start_sinks(pipeline: Pipeline, plugins: Plugins, config: Config) -> None:
    """Open the configured sinks and give them to ``pipeline``."""
    for info in plugins.infos.values():  # every plugin has been loaded by now
        if info.error:
            log.warning("plugin not loaded", plugin=info.name, error=info.error)
    sinks = open_sinks(plugins.sinks(), config.sinks)
    with closing_on_error(sinks):
        pipeline.start(sinks)


def checked_plan(config: Config, plugins: Plugins, monitors: Wanted) -> tuple[Plan, dict[str, int]]:
    """The run's plan, and its sinks' queue sizes, once the whole configuration is checked
    (``monitors``: those the run opens): a bad event, sink or monitor option is told
    before privileges or the kernel are."""
    the_plan = plan(config, plugins)
    sizes = check_outputs(plugins.sinks(), config.sinks, plugins.monitors(), monitors)
    return the_plan, sizes


def run(config: Config, plugins: Plugins) -> int:
    """Run until SIGINT or SIGTERM (SIGHUP reopens output files); returns the exit status."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: request_reopen())
    the_plan, sizes = checked_plan(config, plugins, config.monitors)
    cgroups = CgroupIndex(cgroup.cgroup2_mount()) if the_plan.uses_probe else None
    scope_test = filters.scope(config.scope, cgroups.path if cgroups else lambda _: None)
    accounting = Accounting(time.time_ns())
    contexts = Contexts(cgroups)
    # Every option (events', signatures', sinks', monitors') is checked before the
    # probe's privileges are, and nothing is opened until they are there.
    pipeline = pipeline_of(the_plan, config, accounting, sizes, contexts, scope_test)
    flow_probe = _probe(the_plan, config) if the_plan.uses_probe else None
    start_sinks(pipeline, plugins, config)
    monitors: list[Monitor] = []
    try:
        monitors = open_monitors(
            plugins.monitors(), config.monitors, accounting.snapshot, accounting.is_loss
        )
        if flow_probe is not None:
            flow_probe.attach()
            contexts.add_owners(_older_listeners())
            if pipeline.wants_open_sockets:
                connections, owners = _open_connections()
                contexts.add_owners(owners)
                pipeline.preload(connections)
        log.info(
            "ready",
            events=[spec.name for spec in the_plan.events if spec.name in the_plan.published],
            signatures=[enabled.spec.name for enabled in the_plan.signatures],
            for_signatures_only=[
                spec.name for spec in the_plan.events if spec.name not in the_plan.published
            ],
            sinks=list(config.sinks),
            cgroup=str(flow_probe.cgroup) if flow_probe else None,
            kinds=[kind.name for kind in PacketKind if kind in the_plan.needs],
        )
        with streaming_collection():
            _Loop(flow_probe, pipeline, accounting, config).run(stop)
    finally:
        if flow_probe is not None:
            flow_probe.close()
        pipeline.close()
        close_monitors(monitors)
    log.info("totals", **accounting.totals())
    return 0


def _probe(the_plan: Plan, config: Config) -> probe.FlowProbe:
    """The run's probe, once the process is known to have what loading it takes."""
    missing = capabilities.missing_for_probe(capabilities.effective())
    if missing:
        raise RunError(
            f"the {probe.NAME} probe needs capabilities this process lacks: "
            f"{', '.join(missing)}; run as root (or grant them)"
        )
    target = cgroup.attach_target(config.cgroup)
    return probe.FlowProbe(the_plan.needs, target, config.ring_buffer_kib, the_plan.kernel_scope)


def _older_listeners() -> dict[int, Owner]:
    """Owners of listeners created before the probe (see hostcore/probe/sockets.py)."""
    try:
        owners = sockets.listener_owners()
    except OSError as error:
        log.warning("listeners older than hostcore will have no owner", error=str(error))
        return {}
    log.info("older listeners matched to processes", listeners=len(owners))
    return owners


def _open_connections() -> tuple[list[OpenSocket], dict[int, Owner]]:
    """Established connections older than hostcore's first packet, and their owners."""
    try:
        found = sockets.open_sockets()
    except OSError as error:
        log.warning("connections older than hostcore will end as 'missed'", error=str(error))
        return [], {}
    owners = sockets.owners_of({inode: sock.socket_cookie for sock, inode in found})
    log.info("open connections read", connections=len(found))
    return [sock for sock, _ in found], owners


class _Loop:
    """Drain the probe into the pipeline; report losses each second and stats each interval."""

    def __init__(
        self,
        flow_probe: probe.FlowProbe | None,
        pipeline: Pipeline,
        accounting: Accounting,
        config: Config,
    ) -> None:
        self._probe = flow_probe
        self._pipeline = pipeline
        self._accounting = accounting
        self._config = config
        self._errors: Counter[str] = Counter()
        self._records = RecordReader()
        self._offset_ns = boot_to_epoch_offset_ns()

    def run(self, stop: threading.Event) -> None:
        next_second = time.monotonic_ns()
        stats_interval_ns = int(self._config.stats_interval_s * 10**9)
        next_stats = next_second + stats_interval_ns
        while not stop.is_set() and self._pipeline.has_sinks:
            self._drain(self._config.poll_interval_ms, stop)
            now = time.monotonic_ns()
            if now >= next_second:
                self._each_second()
                next_second = now + LOSS_CHECK_INTERVAL_NS
            if now >= next_stats:
                log.info("stats", **self._accounting.totals())
                next_stats = now + stats_interval_ns
        if self._probe is not None:
            self._probe.detach()  # no new records; those already queued are read below
        self._drain(0, stop)
        self._each_second()

    def _drain(self, timeout_ms: int, stop: threading.Event) -> None:
        if self._probe is None:
            stop.wait(timeout_ms / 1000)
            return
        raw = self._probe.read(timeout_ms)
        self._accounting.count("records", len(raw))
        self._pipeline.feed(self._records.packets(raw, self._offset_ns, self._errors))
        for reason, n in self._errors.items():
            self._accounting.count(f"decode_errors.{reason}", n)
        self._errors.clear()

    def _each_second(self) -> None:
        # Re-measured because NTP may step or slew the wall clock; boot time never jumps.
        self._offset_ns = boot_to_epoch_offset_ns()
        if self._probe is not None:
            self._accounting.set("kernel_reserve_failures", self._probe.reserve_failures())
        now_ns = time.time_ns()
        self._pipeline.expire(now_ns)
        self._pipeline.report_losses(now_ns)
