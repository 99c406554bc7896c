"""Hook specifications: the reference for what a hostcore plugin can implement.

Every plugin is a module or object registered from the ``hostcore`` entry-point
group; it implements any of these hooks with ``@hostcore.hookimpl``.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from hostcore.events import EventSpec
from hostcore.monitors import MonitorSpec
from hostcore.signatures.spec import SignatureSpec
from hostcore.sinks.base import SinkSpec
from hostcore.sources import SourceSpec

hookspec = pluggy.HookspecMarker("hostcore")


@hookspec
def hostcore_register_events(register: Callable[[EventSpec], None]) -> None:
    """Declare the events this plugin provides.

    :param register: call it once per event with its :class:`hostcore.EventSpec`.
        An event name or id that another plugin already declared is a load
        error naming both plugins.

    Called once per process, before any packet is read, whether or not the
    events end up enabled. Handlers are only built for enabled events.
    """


@hookspec
def hostcore_register_sinks(register: Callable[[SinkSpec], None]) -> None:
    """Declare the sinks this plugin provides.

    :param register: call it once per sink with its :class:`hostcore.SinkSpec`.
        A sink name another plugin already declared is a load error naming both.

    Called once per process. A sink is opened only when a user selects it by
    name (``--sink NAME`` or a ``[sinks.NAME]`` table in the config file).
    """


@hookspec
def hostcore_register_sources(register: Callable[[SourceSpec], None]) -> None:
    """Declare the event sources this plugin can read for ``hostcore tail URL``.

    :param register: call it once per URL scheme with its :class:`hostcore.SourceSpec`.
        A scheme another plugin already declared is a load error naming both.

    Called once per process, by ``hostcore tail`` only; the source whose name is the
    URL's scheme reads it.
    """


@hookspec
def hostcore_register_signatures(register: Callable[[SignatureSpec], None]) -> None:
    """Declare the signatures this plugin provides.

    :param register: call it once per signature with its
        :class:`hostcore.SignatureSpec`. A finding name or id that an event or
        another signature already uses is a load error naming both plugins.

    Called once per process, after every plugin's events are declared. A
    signature that consumes an event no plugin provides, or that is in a cycle
    of signatures consuming each other's findings, is not loaded: its plugin
    is reported with the reason (fatal in strict mode).
    """


@hookspec
def hostcore_register_monitors(register: Callable[[MonitorSpec], None]) -> None:
    """Declare the monitors this plugin provides: live views of a run's counters.

    :param register: call it once per monitor with its :class:`hostcore.MonitorSpec`.
        A monitor name another plugin already declared is a load error naming both.

    Called once per run. A monitor is opened only when a user selects it by name
    (``--monitor NAME`` or a ``[monitors.NAME]`` table in the config file), once the
    sinks are open, and closed as the run ends.
    """
