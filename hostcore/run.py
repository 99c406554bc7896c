"""``hostcore run``: attach the probe, feed the pipeline until a signal, report totals."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import structlog

from hostcore import probe
from hostcore.config import Config
from hostcore.events import EventSpec
from hostcore.monitors import Monitor, MonitorSpec, ReadCounters
from hostcore.packet import OpenSocket, Owner, PacketKind
from hostcore.pipeline import filters
from hostcore.pipeline.accounting import Accounting, is_loss
from hostcore.pipeline.context import Contexts
from hostcore.pipeline.dispatch import Pipeline
from hostcore.pipeline.filters import DataFilter, data_filter, parse_selector
from hostcore.pipeline.selection import resolve
from hostcore.plugins import Plugins
from hostcore.probe import capabilities, cgroup, records, sockets
from hostcore.probe.cgroup import CgroupIndex
from hostcore.probe.clock import boot_to_epoch_offset_ns
from hostcore.signatures import loading
from hostcore.signatures.loading import Enabled
from hostcore.signatures.spec import SignatureSpec
from hostcore.sinks.base import Sink, SinkOptionError, SinkSpec
from hostcore.sinks.output import request_reopen

LOSS_CHECK_INTERVAL_NS = 10**9


class _Selectable(Protocol):
    """A sink's or monitor's spec, as far as choosing one by name goes."""

    @property
    def options(self) -> Mapping[str, str]: ...


SpecT = TypeVar("SpecT", bound=_Selectable)
QUEUE_SIZE_OPTION = "queue_size"  # the core's own option, taken by every sink

log = structlog.get_logger()


class RunError(RuntimeError):
    """The run cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class Plan:
    """What a run will do, worked out and checked before anything is attached."""

    events: list[EventSpec]  # every event the run produces
    published: frozenset[str]  # the events and findings selected: the others feed signatures
    signatures: list[Enabled]
    needs: PacketKind
    uses_probe: bool
    data_filters: list[DataFilter]
    kernel_scope: list[str]  # compile flags for the scope filters the probe applies


def plan(config: Config, plugins: Plugins) -> Plan:
    specs = plugins.events()
    signature_specs = plugins.signatures(specs)
    catalogue: dict[str, EventSpec | SignatureSpec] = {**specs, **signature_specs}
    selectors, data_filters = [], []
    for text in config.enable:
        name, filter_text = parse_selector(text)
        selectors.append(name)
        if filter_text is not None:
            data_filters.append(data_filter(name, filter_text, catalogue))
    chosen = resolve(catalogue, selectors)
    _check_options("signature", config.signatures, signature_specs)
    _check_options("event", config.event_options, specs)
    signatures = loading.enable(
        [spec for spec in chosen if isinstance(spec, SignatureSpec)], catalogue, config.signatures
    )
    # Selecting a signature enables the events it consumes, as Tracee does.
    consumed = {name for enabled in signatures for name in enabled.consumes if name in specs}
    selected = {spec.name for spec in chosen if isinstance(spec, EventSpec)}
    events = sorted((specs[name] for name in selected | consumed), key=lambda spec: spec.id)
    unknown = {spec.depends_on for spec in events} - {probe.NAME, ""}
    if unknown:
        raise RunError(f"events depend on unknown base events: {', '.join(sorted(unknown))}")
    needs = PacketKind.NONE
    for spec in events:
        needs |= spec.needs
        if spec.uses_dns:
            needs |= PacketKind.DNS_ANSWER
    uses_probe = any(spec.depends_on == probe.NAME for spec in events)
    filters.scope(config.scope, lambda _: None)  # the syntax: a bad filter stops even --print-bpf
    in_kernel = filters.kernel_scope(config.scope) if uses_probe else []
    published = frozenset(spec.name for spec in chosen)
    return Plan(events, published, signatures, needs, uses_probe, data_filters, in_kernel)


def _check_options(
    kind: str,
    tables: Mapping[str, Mapping[str, object]],
    specs: Mapping[str, EventSpec] | Mapping[str, SignatureSpec],
) -> None:
    """Every ``[signatures.NAME]`` or ``[events.NAME]`` table (``kind`` says which) names an
    installed one and only its options."""
    for name, options in tables.items():
        spec = specs.get(name)
        if spec is None:
            raise RunError(
                f"[{kind}s.{name}] names no installed {kind}; installed: "
                f"{', '.join(sorted(specs)) or '(none)'} (see 'hostcore {kind}s')"
            )
        unknown = set(options) - set(spec.options)
        if unknown:
            raise RunError(
                f"{kind} {name!r} has no option {', '.join(sorted(unknown))}; "
                f"its options: {', '.join(spec.options) or '(none)'}"
            )


@contextlib.contextmanager
def closing_on_error(sinks: Mapping[str, Sink]) -> Iterator[None]:
    """Close ``sinks`` if the block fails: nothing will use them."""
    try:
        yield
    except BaseException:
        for sink in sinks.values():
            sink.close()
        raise


def queue_sizes(wanted: Mapping[str, Mapping[str, str]]) -> dict[str, int]:
    """The ``queue_size`` each sink was given, checked."""
    sizes = {}
    for name, options in wanted.items():
        if QUEUE_SIZE_OPTION in options:
            text = options[QUEUE_SIZE_OPTION]
            if not text.isdigit() or int(text) < 1:
                raise RunError(
                    f"sink {name!r}: queue_size must be a whole number >= 1, got {text!r}"
                )
            sizes[name] = int(text)
    return sizes


def open_sinks(
    specs: Mapping[str, SinkSpec], wanted: Mapping[str, Mapping[str, str]]
) -> dict[str, Sink]:
    """Open every wanted sink, or none: a bad name or option closes those already open."""
    opened: dict[str, Sink] = {}
    with closing_on_error(opened):
        for name, all_options in wanted.items():
            options = {k: v for k, v in all_options.items() if k != QUEUE_SIZE_OPTION}
            spec = _selected("sink", specs, name, options, (QUEUE_SIZE_OPTION,))
            try:
                opened[name] = spec.open(options)
            except SinkOptionError as error:
                raise RunError(f"sink {name!r}: {error}") from error
            except Exception as error:
                raise RunError(
                    f"sink {name!r} (plugin {spec.plugin!r}) failed to open: "
                    f"{type(error).__name__}: {error}"
                ) from error
    return opened


def _selected(
    kind: str,
    specs: Mapping[str, SpecT],
    name: str,
    options: Mapping[str, str],
    core_options: Sequence[str] = (),
) -> SpecT:
    """The spec of the sink or monitor the user named, whose options it all takes
    (``core_options``, the core's own, taken out of ``options`` already)."""
    found = specs.get(name)
    if found is None:
        raise RunError(
            f"unknown {kind} {name!r}; installed {kind}s: {', '.join(sorted(specs)) or '(none)'} "
            "(see 'hostcore plugins')"
        )
    known = [*found.options, *core_options]
    unknown = set(options) - set(found.options)
    if unknown:
        raise RunError(
            f"{kind} {name!r} has no option {', '.join(sorted(unknown))}; "
            f"its options: {', '.join(known) or '(none)'}"
        )
    return found


def open_monitors(
    specs: Mapping[str, MonitorSpec], wanted: Mapping[str, Mapping[str, str]], read: ReadCounters
) -> list[Monitor]:
    """Open every wanted monitor, or none."""
    opened: list[Monitor] = []
    try:
        for name, options in wanted.items():
            spec = _selected("monitor", specs, name, options)
            try:
                opened.append(spec.open(options, read, is_loss))
            except Exception as error:
                raise RunError(
                    f"monitor {name!r} (plugin {spec.plugin!r}) failed to open: "
                    f"{type(error).__name__}: {error}"
                ) from error
    except BaseException:
        close_monitors(opened)
        raise
    return opened


def close_monitors(monitors: list[Monitor]) -> None:
    for monitor in monitors:
        try:
            monitor.close()
        except Exception:
            log.exception("monitor close failed")


def start_pipeline(
    the_plan: Plan,
    plugins: Plugins,
    config: Config,
    accounting: Accounting,
    contexts: Contexts | None = None,
    scope: filters.Test | None = None,
    sinks_wait: bool = False,
) -> Pipeline:
    """Open the configured sinks and start the planned events' handlers."""
    sink_specs = plugins.sinks()
    for info in plugins.infos.values():  # every plugin has been loaded by now
        if info.error:
            log.warning("plugin not loaded", plugin=info.name, error=info.error)
    sizes = queue_sizes(config.sinks)
    sinks = open_sinks(sink_specs, config.sinks)
    with closing_on_error(sinks):
        return Pipeline(
            the_plan.events,
            sinks,
            config.host_name,
            accounting,
            config.dns,
            contexts,
            scope,
            filters.data_tests(the_plan.data_filters),
            the_plan.signatures,
            the_plan.published,
            config.event_options,
            config.format,
            queue_sizes=sizes,
            drain_timeout_s=config.sink_drain_timeout_s,
            sinks_wait=sinks_wait,
        )


def run(config: Config, plugins: Plugins) -> int:
    """Run until SIGINT or SIGTERM (SIGHUP reopens output files); returns the exit status."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: request_reopen())
    the_plan = plan(config, plugins)
    flow_probe = None
    if the_plan.uses_probe:
        missing = capabilities.missing_for_probe(capabilities.effective())
        if missing:
            raise RunError(
                f"the {probe.NAME} probe needs capabilities this process lacks: "
                f"{', '.join(missing)}; run as root (or grant them)"
            )
        target = cgroup.attach_target(config.cgroup)
        flow_probe = probe.FlowProbe(
            the_plan.needs, target, config.ring_buffer_kib, the_plan.kernel_scope
        )
    cgroups = CgroupIndex(cgroup.cgroup2_mount()) if the_plan.uses_probe else None
    scope_test = filters.scope(config.scope, cgroups.path if cgroups else lambda _: None)
    accounting = Accounting(time.time_ns())
    found_owners: dict[int, Owner] = {}  # filled once the probe records new sockets
    pipeline = start_pipeline(
        the_plan, plugins, config, accounting, Contexts(cgroups, found_owners), scope_test
    )
    monitors: list[Monitor] = []
    try:
        monitors = open_monitors(plugins.monitors(), config.monitors, accounting.snapshot)
        if flow_probe is not None:
            flow_probe.attach()
            found_owners.update(_older_listeners())
            if pipeline.wants_open_sockets:
                pipeline.preload(_open_connections(found_owners))
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
        _Loop(flow_probe, pipeline, accounting, config).run(stop)
    finally:
        if flow_probe is not None:
            flow_probe.close()
        pipeline.close()
        close_monitors(monitors)
    log.info("totals", **accounting.totals())
    return 0


def _older_listeners() -> dict[int, Owner]:
    """Owners of listeners created before the probe (see hostcore/probe/sockets.py)."""
    try:
        owners = sockets.listener_owners()
    except OSError as error:
        log.warning("listeners older than hostcore will have no owner", error=str(error))
        return {}
    log.info("older listeners matched to processes", listeners=len(owners))
    return owners


def _open_connections(owners: dict[int, Owner]) -> list[OpenSocket]:
    """Established connections older than hostcore's first packet; their owners go to ``owners``."""
    try:
        found = sockets.open_sockets()
    except OSError as error:
        log.warning("connections older than hostcore will end as 'missed'", error=str(error))
        return []
    owners.update(sockets.owners_of({inode: sock.socket_cookie for sock, inode in found}))
    log.info("open connections read", connections=len(found))
    return [sock for sock, _ in found]


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
        self._pipeline.feed(records.packets(raw, self._offset_ns, self._errors))
        for reason, n in self._errors.items():
            self._accounting.count(f"decode_errors.{reason}", n)
        self._errors.clear()

    def _each_second(self) -> None:
        # Re-measured because NTP may step or slew the wall clock; boot time never jumps.
        self._offset_ns = boot_to_epoch_offset_ns()
        if self._probe is not None:
            self._accounting.counters["kernel_reserve_failures"] = self._probe.reserve_failures()
        now_ns = time.time_ns()
        self._pipeline.expire(now_ns)
        self._pipeline.report_losses(now_ns)
