"""The configuration: a TOML file, overridden by command-line flags."""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hostcore.pipeline import filters
from hostcore.pipeline.tracee import FORMATS

DEFAULT_PATH = Path("/etc/hostcore/hostcore.toml")
STRICT_PLUGINS_ENV = "HOSTCORE_STRICT_PLUGINS"


class ConfigError(ValueError):
    """Bad configuration; the message names the file and the key."""


DNS_SCOPES = ("cgroup", "host")


@dataclass(frozen=True)
class DnsConfig:
    """The DNS store: ``[dns]`` in the config file."""

    store_size: int = 16384  # chains (question, CNAMEs, address); ~350 bytes each
    ttl_floor_s: int = 0
    ttl_ceiling_s: int = 86400
    scope: str = "cgroup"  # "cgroup": the asking socket's cgroup first; "host": one pool

    def __post_init__(self) -> None:
        if self.store_size < 1:
            raise ConfigError(f"dns.store_size must be >= 1, got {self.store_size}")
        if not 0 <= self.ttl_floor_s <= self.ttl_ceiling_s:
            raise ConfigError(
                "dns.ttl_floor_s and dns.ttl_ceiling_s must satisfy 0 <= floor <= ceiling, "
                f"got {self.ttl_floor_s} and {self.ttl_ceiling_s}"
            )
        if self.scope not in DNS_SCOPES:
            raise ConfigError(
                f"dns.scope must be one of {', '.join(DNS_SCOPES)}, got {self.scope!r}"
            )


@dataclass(frozen=True)
class Config:
    enable: tuple[str, ...] = ("flows",)
    host_name: str = field(default_factory=socket.gethostname)
    cgroup: str = ""  # "" means the root of the cgroup v2 hierarchy
    ring_buffer_kib: int = 16384  # flows' bursts: 4 MiB dropped 4% of a 20k-connection one
    poll_interval_ms: int = 10
    stats_interval_s: float = 60.0
    sinks: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: {"stdout": {}})
    plugins_allow: frozenset[str] = frozenset()
    plugins_deny: frozenset[str] = frozenset()
    strict_plugins: bool = False
    dns: DnsConfig = field(default_factory=DnsConfig)
    scope: tuple[str, ...] = ()  # scope filters (hostcore/pipeline/filters.py), all must pass
    event_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # [events.NAME]
    format: str = "hostcore"  # the event map every sink receives: hostcore's, or Tracee's
    # [signatures.NAME] tables: options by signature, checked against it when a run starts
    signatures: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    monitors: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # [monitors.NAME]
    sink_drain_timeout_s: float = 5.0  # at exit, how long sinks may take to write what they hold

    def __post_init__(self) -> None:
        kib = self.ring_buffer_kib
        if kib < 4 or kib & (kib - 1):
            raise ConfigError(f"ring_buffer_kib must be a power of two >= 4, got {kib}")
        if self.poll_interval_ms < 1:
            raise ConfigError(f"poll_interval_ms must be >= 1, got {self.poll_interval_ms}")
        if self.stats_interval_s <= 0:
            raise ConfigError(f"stats_interval_s must be > 0, got {self.stats_interval_s}")
        if not self.enable:
            raise ConfigError("enable must name at least one event or event set")
        if self.sink_drain_timeout_s < 0:
            raise ConfigError(f"sink_drain_timeout_s must be >= 0, got {self.sink_drain_timeout_s}")
        if not self.sinks:
            raise ConfigError("sinks must name at least one sink, e.g. [sinks.stdout]")
        if self.format not in FORMATS:
            raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")


_TOP_LEVEL: dict[str, type] = {
    "enable": list,
    "host_name": str,
    "cgroup": str,
    "ring_buffer_kib": int,
    "poll_interval_ms": int,
    "stats_interval_s": float,
    "scope": list,
    "format": str,
    "sink_drain_timeout_s": float,
}
_TABLES = ("dns", "events", "monitors", "plugins", "signatures", "sinks")
_PLUGINS: dict[str, type] = {"allow": list, "deny": list, "strict": bool}
_DNS: dict[str, type] = {"store_size": int, "ttl_floor_s": int, "ttl_ceiling_s": int, "scope": str}


def load(path: Path | None) -> Config:
    """Read ``path``, or the default file if it exists, or return the defaults."""
    if path is None:
        if not DEFAULT_PATH.exists():
            return Config()
        path = DEFAULT_PATH
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    try:
        return _from_toml(raw)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def _from_toml(raw: Mapping[str, Any]) -> Config:
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "plugins":
            values.update(_plugins(_table(key, value)))
        elif key in ("sinks", "monitors"):
            values[key] = _option_tables(key, _table(key, value))
        elif key == "events":
            values["event_options"] = _option_tables(key, _table(key, value))
        elif key == "dns":
            values["dns"] = DnsConfig(**_typed_table(key, _table(key, value), _DNS))
        elif key == "signatures":
            tables = _table(key, value)
            values[key] = {name: _table(f"{key}.{name}", t) for name, t in tables.items()}
        elif key in _TOP_LEVEL:
            values[key] = _typed(key, value, _TOP_LEVEL[key])
        else:
            known = ", ".join(sorted([*_TOP_LEVEL, *_TABLES]))
            raise ConfigError(f"unknown key {key!r} (known keys: {known})")
    for key in ("enable", "scope"):
        if key in values:
            values[key] = tuple(_strings(key, values[key]))
    try:
        filters.scope(values.get("scope", ()), lambda _: None)  # the syntax, before any run
    except filters.FilterError as error:
        raise ConfigError(str(error)) from error
    return Config(**values)


def _typed_table(name: str, table: Mapping[str, Any], types: Mapping[str, type]) -> dict[str, Any]:
    """The table's values, each checked against ``types``; an unknown key is an error."""
    values = {}
    for key, value in table.items():
        if key not in types:
            raise ConfigError(f"unknown key '{name}.{key}' (known: {', '.join(types)})")
        values[key] = _typed(f"{name}.{key}", value, types[key])
    return values


def _plugins(table: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in _typed_table("plugins", table, _PLUGINS).items():
        if key == "strict":
            values["strict_plugins"] = value
        else:
            values[f"plugins_{key}"] = frozenset(_strings(f"plugins.{key}", value))
    return values


def _option_tables(kind: str, table: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """``[sinks.NAME]``, ``[events.NAME]`` or ``[monitors.NAME]`` tables: options as text,
    checked when a run starts."""
    tables = {}
    for name, options in table.items():
        options = _table(f"{kind}.{name}", options)
        for key, value in options.items():
            if not isinstance(value, str | int | float | bool):
                raise ConfigError(f"'{kind}.{name}.{key}' must be a string or number")
        tables[name] = {key: str(value) for key, value in options.items()}
    return tables


def _table(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key!r} must be a table ([{key}])")
    return value


def _typed(key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key!r} must be of type {kind.__name__}, got {value!r}")
    return value


def _strings(key: str, values: list[Any]) -> list[str]:
    if not all(isinstance(value, str) for value in values):
        raise ConfigError(f"{key!r} must be a list of strings, got {values!r}")
    return values


def strict_from_environment() -> bool:
    """True if HOSTCORE_STRICT_PLUGINS asks for strict plugin loading (as CI does)."""
    return os.environ.get(STRICT_PLUGINS_ENV, "").lower() in {"1", "true", "yes"}


def parse_sinks(texts: list[str], flag: str = "--sink") -> dict[str, dict[str, str]]:
    """Parse repeated ``--sink`` (or ``--monitor``) flags; naming one twice is an error."""
    named: dict[str, dict[str, str]] = {}
    for text in texts:
        name, options = parse_sink(text, flag)
        if name in named:
            raise ConfigError(f"{flag} {name!r} is given twice; each takes one set of options")
        named[name] = options
    return named


def parse_sink(text: str, flag: str = "--sink") -> tuple[str, dict[str, str]]:
    """Parse ``NAME[:key=value,...]``: the name ends at the first colon."""
    name, _, rest = text.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ConfigError(f"{flag} {text!r}: expected key=value, got {item!r}")
        options[key] = value
    if not name:
        raise ConfigError(f"{flag} {text!r}: no name")
    return name, options


def with_overrides(config: Config, **overrides: Any) -> Config:
    """The config with every override that is not None applied (flags win over the file)."""
    known = {f.name for f in fields(Config)}
    return replace(config, **{k: v for k, v in overrides.items() if v is not None and k in known})
