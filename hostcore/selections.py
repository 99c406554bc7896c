"""The sinks and monitors a user selected: checked, opened, closed."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol, TypeVar

import structlog

from hostcore.monitors import IsLoss, Monitor, MonitorSpec, ReadCounters
from hostcore.options import OptionError, whole_number_option
from hostcore.plan import RunError
from hostcore.plugins import started
from hostcore.sinks.base import Sink, SinkSpec

QUEUE_SIZE_OPTION = "queue_size"  # the core's own option, taken by every sink

log = structlog.get_logger()


class _Selectable(Protocol):
    """A sink's or monitor's spec, as far as choosing one by name goes."""

    @property
    def options(self) -> Mapping[str, str]: ...

    @property
    def plugin(self) -> str: ...


SpecT = TypeVar("SpecT", bound=_Selectable)
Wanted = Mapping[str, Mapping[str, str]]
"""What the user selected: name -> options, as ``--sink``, ``--monitor`` or a config table."""


def check_outputs(
    sinks: Mapping[str, SinkSpec],
    wanted_sinks: Wanted,
    monitors: Mapping[str, MonitorSpec],
    wanted_monitors: Wanted,
) -> dict[str, int]:
    """Check every selection names an installed sink or monitor and only its options,
    before anything is opened or attached; returns each sink's ``queue_size``."""
    for name, options in wanted_monitors.items():
        monitor = _selected("monitor", monitors, name, options)
        if monitor.check is not None:
            started("monitor", name, monitor.plugin, functools.partial(monitor.check, options))
    sizes = {}
    for name, options in wanted_sinks.items():
        sink = _selected("sink", sinks, name, _own(options), (QUEUE_SIZE_OPTION,))
        if sink.check is not None:
            started("sink", name, sink.plugin, functools.partial(sink.check, _own(options)))
        if QUEUE_SIZE_OPTION in options:
            try:
                sizes[name] = whole_number_option(options, QUEUE_SIZE_OPTION, 1)
            except OptionError as error:
                raise RunError(f"sink {name!r}: {error}") from None
    return sizes


def _own(options: Mapping[str, str]) -> dict[str, str]:
    """A sink's options without the core's own."""
    return {key: value for key, value in options.items() if key != QUEUE_SIZE_OPTION}


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


@contextlib.contextmanager
def closing_on_error(sinks: Mapping[str, Sink]) -> Iterator[None]:
    """Close ``sinks`` if the block fails: nothing will use them."""
    try:
        yield
    except BaseException:
        for sink in sinks.values():
            sink.close()
        raise


def open_sinks(specs: Mapping[str, SinkSpec], wanted: Wanted) -> dict[str, Sink]:
    """Open every wanted sink, or none: a bad name or option closes those already open."""
    opened: dict[str, Sink] = {}
    with closing_on_error(opened):
        for name, all_options in wanted.items():
            options = _own(all_options)
            spec = _selected("sink", specs, name, options, (QUEUE_SIZE_OPTION,))
            opened[name] = started("sink", name, spec.plugin, functools.partial(spec.open, options))
    return opened


def open_monitors(
    specs: Mapping[str, MonitorSpec], wanted: Wanted, read: ReadCounters, is_loss: IsLoss
) -> list[Monitor]:
    """Open every wanted monitor, or none."""
    opened: list[Monitor] = []
    try:
        for name, options in wanted.items():
            spec = _selected("monitor", specs, name, options)
            open_it = functools.partial(spec.open, options, read, is_loss)
            opened.append(started("monitor", name, spec.plugin, open_it))
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
