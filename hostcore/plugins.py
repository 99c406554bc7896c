"""Find plugins through the ``hostcore`` entry-point group and collect what they declare.

The core's own sinks are plugins too, registered directly rather than found: they
are always there, whatever a ``[plugins] allow`` list names.
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.metadata import EntryPoint, entry_points, version
from typing import Any, TypeVar

import pluggy

from hostcore import hookspecs
from hostcore.events import LOST_EVENTS_ID, LOST_EVENTS_NAME, EventSpec
from hostcore.monitors import MonitorSpec
from hostcore.options import OptionError
from hostcore.signatures import loading
from hostcore.signatures.spec import SignatureSpec
from hostcore.sinks.base import SinkSpec
from hostcore.sources import SourceSpec

ENTRY_POINT_GROUP = "hostcore"
BUILT_IN = {  # plugin name -> module
    "stdout": "hostcore.sinks.stdout",
    "file": "hostcore.sinks.file",
    "socket": "hostcore.sinks.socket",
    "forward": "hostcore.sinks.forward",
}
BUILT_IN_STATUS = "built in"


Named = TypeVar("Named", SinkSpec, SourceSpec, MonitorSpec)  # declarations known by a unique name


class PluginError(Exception):
    """A plugin could not be used; the message names it and says why."""


Made = TypeVar("Made")


def register_checked(manager: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register ``plugin``; a hook argument no spec has, or a hook no spec declares (a
    typo, or a newer hostcore's), unregisters it again and raises pluggy's error."""
    try:
        manager.register(plugin, name=name)
        manager.check_pending()
    except pluggy.PluginValidationError:
        if manager.get_plugin(name) is plugin:
            manager.unregister(plugin)
        raise


def caller_for(manager: pluggy.PluginManager, hook_name: str, plugin: object) -> Any:
    """The hook caller that reaches ``plugin`` alone: through pluggy, so that it gets only
    the arguments it names, and one plugin's failure is told as its own."""
    others = [other for other in manager.get_plugins() if other is not plugin]
    return manager.subset_hook_caller(hook_name, others)


def started(kind: str, name: str, plugin: str, make: Callable[[], Made]) -> Made:
    """``make()``: a plugin's sink, monitor, handler or signature, started. A bad option
    (OptionError) is the user's error, told as such; anything else is the plugin's."""
    try:
        return make()
    except OptionError as error:
        raise PluginError(f"{kind} {name!r}: {error}") from error
    except Exception as error:
        raise PluginError(
            f"{kind} {name!r} from plugin {plugin!r} failed to start: "
            f"{type(error).__name__}: {error}"
        ) from error


@dataclass
class PluginInfo:
    """What ``hostcore plugins`` shows about one entry point."""

    name: str
    distribution: str
    version: str
    status: str = "not loaded"  # loaded, built in, denied, not allowed, error
    error: str = ""
    provides: list[str] = field(default_factory=list)


@dataclass
class Plugins:
    """The plugin manager: loads entry points once, on first use, by the allow/deny rules."""

    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    strict: bool = False
    manager: pluggy.PluginManager = field(init=False)
    infos: dict[str, PluginInfo] = field(init=False, default_factory=dict)
    _loaded: bool = field(init=False, default=False)
    # What each registration hook declared, by plugin: hooks are called once per process.
    _declared: dict[str, list[tuple[str, Any]]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.manager = pluggy.PluginManager("hostcore")
        self.manager.add_hookspecs(hookspecs)

    def load(self) -> None:
        """Register the built-in sinks, then import and register every permitted entry
        point, once."""
        if self._loaded:
            return
        self._loaded = True
        denied = sorted(self.deny & BUILT_IN.keys())
        if denied:
            raise PluginError(
                f"[plugins] deny names the core's own sink(s) {', '.join(denied)}: they are "
                "not plugins and always there; a run uses only the sinks --sink or "
                "[sinks] select"
            )
        for name, module in BUILT_IN.items():
            self.infos[name] = PluginInfo(name, "hostcore", version("hostcore"), BUILT_IN_STATUS)
            self._register(name, importlib.import_module(module), BUILT_IN_STATUS)
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            self._load_entry_point(entry_point)

    def _load_entry_point(self, entry_point: EntryPoint) -> None:
        dist = entry_point.dist
        info = PluginInfo(
            entry_point.name,
            dist.name if dist else "?",
            dist.version if dist else "?",
        )
        earlier = self.infos.get(entry_point.name)
        if earlier is not None:
            self._fail(
                info,
                f"uses the plugin name of {earlier.distribution} {earlier.version}; "
                "uninstall one of them",
                None,
            )
            self.infos[f"{entry_point.name} ({info.distribution})"] = info
            return
        self.infos[entry_point.name] = info
        if entry_point.name in self.deny:
            info.status = "denied"
            return
        if self.allow and entry_point.name not in self.allow:
            info.status = "not allowed"
            return
        try:
            plugin = entry_point.load()
        except Exception as error:
            self._fail(info, f"cannot import {entry_point.value}", error)
            return
        self._register(entry_point.name, plugin)

    def _register(self, name: str, plugin: object, status: str = "loaded") -> None:
        info = self.infos[name]
        try:
            register_checked(self.manager, plugin, name)
        except pluggy.PluginValidationError as error:
            self._fail(info, "has invalid hooks", error)
            return
        except ValueError as error:  # the same object under two entry-point names
            self._fail(info, "is registered twice", error)
            return
        info.status = status

    def _fail(self, info: PluginInfo, what: str, error: BaseException | None) -> None:
        info.status = "error"
        detail = f": {type(error).__name__}: {error}" if error else ""
        message = f"plugin {info.name!r} ({info.distribution}) {what}{detail}"
        if self.strict:
            raise PluginError(message) from error
        if error is not None:
            message += "\n" + "".join(traceback.format_exception(error)).rstrip()
        info.error = f"{info.error}\n{message}" if info.error else message

    def events(self) -> dict[str, EventSpec]:
        """Every declared event by name; duplicate names or ids name both plugins."""
        specs: dict[str, EventSpec] = {}
        self._collect("hostcore_register_events", EventSpec, _unique_event(specs, {}))
        return specs

    def signatures(self, events: dict[str, EventSpec]) -> dict[str, SignatureSpec]:
        """Every loadable signature by name, checked against ``events`` (from ``events()``).

        A finding name or id that clashes names both plugins; a signature that
        cannot load (see hostcore/signatures/loading.py) marks its plugin as failed.
        """
        specs: dict[str, SignatureSpec] = {}
        taken: dict[str, EventSpec | SignatureSpec] = dict(events)
        by_id: dict[int, EventSpec | SignatureSpec] = {spec.id: spec for spec in events.values()}
        unique = _unique_event(taken, by_id)

        def add(plugin: str, spec: SignatureSpec) -> None:
            unique(plugin, spec)
            specs[spec.name] = replace(spec, plugin=plugin)

        self._collect("hostcore_register_signatures", SignatureSpec, add)
        for name, problem in loading.problems(specs, events).items():
            spec = specs.pop(name)
            self.infos[spec.plugin].provides.remove(name)
            self._fail(self.infos[spec.plugin], f"cannot load signature {name!r}: {problem}", None)
        return specs

    def sinks(self) -> dict[str, SinkSpec]:
        """Every declared sink by name; a duplicate name names both plugins."""
        return self._named("hostcore_register_sinks", SinkSpec, "sink")

    def monitors(self) -> dict[str, MonitorSpec]:
        """Every declared monitor by name; a duplicate name names both plugins."""
        return self._named("hostcore_register_monitors", MonitorSpec, "monitor")

    def sources(self) -> dict[str, SourceSpec]:
        """Every declared event source by URL scheme; a duplicate names both plugins."""
        return self._named("hostcore_register_sources", SourceSpec, "source")

    def _named(self, hook_name: str, spec_type: type[Named], what: str) -> dict[str, Named]:
        specs: dict[str, Named] = {}

        def add(plugin: str, spec: Named) -> None:
            if spec.name in specs:
                raise PluginError(
                    f"{what} {spec.name!r} from plugin {plugin!r} clashes with the one "
                    f"from plugin {specs[spec.name].plugin!r}"
                )
            specs[spec.name] = replace(spec, plugin=plugin)

        self._collect(hook_name, spec_type, add)
        return specs

    def _collect(self, hook_name: str, spec_type: type, add: Callable[[str, Any], None]) -> None:
        """Call one registration hook plugin by plugin, so a failure names its plugin.

        Each call goes through pluggy (a hook caller without the other plugins), so an
        implementation gets only the arguments it names.
        """
        self.load()
        if hook_name in self._declared:  # a later call: the same declarations, once made
            for name, spec in self._declared[hook_name]:
                add(name, spec)
            return
        declarations = self._declared[hook_name] = []
        for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
            name = impl.plugin_name
            declared: list[Any] = []
            try:
                caller_for(self.manager, hook_name, impl.plugin)(register=declared.append)
                wrong = [spec for spec in declared if not isinstance(spec, spec_type)]
                if wrong:
                    raise TypeError(f"registered {wrong[0]!r}, not a {spec_type.__name__}")
            except Exception as error:
                self._fail(self.infos[name], f"failed in {hook_name}", error)
                self.manager.unregister(name=name)
                continue
            for spec in declared:
                add(name, spec)
                declarations.append((name, spec))
                shown = f"{spec.name}://" if isinstance(spec, SourceSpec) else spec.name
                self.infos[name].provides.append(shown)


def _unique_event(
    by_name: dict[str, Any], by_id: dict[int, Any]
) -> Callable[[str, EventSpec | SignatureSpec], None]:
    """An ``add`` for ``_collect`` that keeps event (and finding) names and ids unique."""
    reserved = {LOST_EVENTS_NAME, LOST_EVENTS_ID}

    def add(plugin: str, spec: EventSpec | SignatureSpec) -> None:
        kind = "signature" if isinstance(spec, SignatureSpec) else "event"
        if reserved & {spec.name, spec.id}:
            raise PluginError(
                f"{kind} {spec.name!r} (id {spec.id}) from plugin {plugin!r} clashes with "
                f"the core's {LOST_EVENTS_NAME!r} (id {LOST_EVENTS_ID})"
            )
        for existing in (by_name.get(spec.name), by_id.get(spec.id)):
            if existing is not None:
                raise PluginError(
                    f"{kind} {spec.name!r} (id {spec.id}) from plugin {plugin!r} clashes "
                    f"with {existing.name!r} (id {existing.id}) from plugin "
                    f"{existing.plugin!r}"
                )
        by_name[spec.name] = by_id[spec.id] = replace(spec, plugin=plugin)

    return add
