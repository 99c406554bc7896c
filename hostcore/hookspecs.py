"""Hook specifications: the reference for what a hostcore plugin can implement.

Every plugin is a module or object registered from the ``hostcore`` entry-point
group; it implements any of the module-level hooks below with ``@hostcore.hookimpl``.
The hooks of :class:`EventHandlerHooks` are implemented by the handlers of an
event plugin's events instead: the core registers each enabled event's handler
for the run, and calls them with packets, timeouts and the connections already
open. Implementations may take any subset of a hook's arguments, by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pluggy

from hostcore.events import EventSpec
from hostcore.monitors import MonitorSpec
from hostcore.packet import OpenSocket, Packet
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
    URL's scheme reads it: ``SourceSpec.tail(url, query, output)`` calls ``output``
    with each event map the :class:`hostcore.TailQuery` wants (``hosts``, ``events``,
    ``start_seq``, ``start_time_ns``, ``follow``), in stream order; it returns at the
    end unless ``query.follow``, and raises :class:`hostcore.SourceError` with a
    message for the user when the URL cannot be read.
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


class EventHandlerHooks:
    """What an event's handler implements, with ``@hostcore.hookimpl`` on its methods.

    ``EventSpec.handler`` builds one handler per run, for enabled events only; the
    core registers it under the event's name for that run. Every call comes from
    the run's dispatch thread, one at a time. A handler that raises loses what it
    was given (counted as ``plugin_errors.<event>``, logged at most once a minute);
    the run and the other handlers go on.
    """

    @hookspec
    def hostcore_packets(self, packets: Sequence[Packet]) -> None:
        """Handle one batch of packets of the kinds the event declared in ``needs``.

        :param packets: in ring-buffer order (for a capture, file order); only the
            kinds in ``EventSpec.needs``, never empty. Every handler sees the same
            immutable ``Packet`` objects.

        Called once per batch (a poll of the ring buffer, 10 ms by default, or up
        to 4096 packets of a capture) for each handler whose kinds the batch
        holds. Each DNS answer in the batch is in the DNS store before any later
        packet is handed to a handler.
        """

    @hookspec
    def hostcore_expire(self, now_ns: int) -> None:
        """Emit what is due at ``now_ns`` even though no packet came (a timeout).

        :param now_ns: nanoseconds since the epoch, the clock of packet timestamps
            (in a replay, capture time).

        Called about once a second, after the packets read by then.
        """

    @hookspec
    def hostcore_preload(self, sockets: Sequence[OpenSocket]) -> None:
        """Take the host's established TCP connections, read as the run starts.

        :param sockets: read once the probe is attached, before any packet is
            handed on (a socket may also show up in later packets).

        Called once per live run, only if the handler implements it (the core
        reads the sockets only then); never in a replay.
        """
