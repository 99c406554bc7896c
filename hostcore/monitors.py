"""Monitors: plugins that show a run's live counters to the outside (e.g. a Prometheus
endpoint). Selected like sinks: ``--monitor NAME[:key=value,...]`` or ``[monitors.NAME]``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

ReadCounters = Callable[[], Mapping[str, int]]
"""A snapshot of the run's counters (name -> value), safe to call from any thread."""

IsLoss = Callable[[str], bool]
"""Whether a counter counts lost events (those ``lost_events`` reports)."""


class Monitor(Protocol):
    """An open monitor; it reads counters whenever it wants, from its own threads."""

    def close(self) -> None:
        """Stop serving; called once as the run ends."""


@dataclass(frozen=True)
class MonitorSpec:
    """A monitor a plugin provides: its name, options (name -> help) and opener.

    ``open(options, read_counters, is_loss)`` starts it, or raises
    :class:`hostcore.OptionError` for a bad option value (the run stops, naming the
    monitor and the error). ``check(options)``, if given, raises the same errors
    without opening anything, before the run needs privileges (see ``SinkSpec``).
    """

    name: str
    open: Callable[[Mapping[str, str], ReadCounters, IsLoss], Monitor]
    options: Mapping[str, str] = field(default_factory=dict)
    check: Callable[[Mapping[str, str]], object] | None = None
    description: str = ""
    plugin: str = field(default="", compare=False)  # filled in by the core
