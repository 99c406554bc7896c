"""Config file parsing and command-line overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostcore import config
from hostcore.config import Config, ConfigError


def test_defaults_enable_flows_and_print_to_stdout() -> None:
    defaults = Config()
    assert defaults.enable == ("flows",)
    assert defaults.sinks == {"stdout": {}}
    assert defaults.ring_buffer_kib == 16384
    assert defaults.dns == config.DnsConfig(16384, 0, 86400, "cgroup")


def test_full_file(tmp_path: Path) -> None:
    path = tmp_path / "hostcore.toml"
    path.write_text(
        """
enable = ["net_flow_tcp_begin", "net_flow_tcp_begin.data.dst_port=443,8443"]
scope = ["container", "uid!=0"]
host_name = "node-7"
cgroup = "system.slice"
ring_buffer_kib = 1024
stats_interval_s = 5
[plugins]
deny = ["nats"]
strict = true
[sinks.file]
path = "/var/log/events.msgpack"
[sinks.stdout]
[events.net_flow_tcp_failed]
syn_timeout_s = 3
[dns]
store_size = 100
ttl_floor_s = 1
ttl_ceiling_s = 600
scope = "host"
"""
    )
    loaded = config.load(path)
    assert loaded.dns == config.DnsConfig(100, 1, 600, "host")
    assert loaded.enable == ("net_flow_tcp_begin", "net_flow_tcp_begin.data.dst_port=443,8443")
    assert loaded.scope == ("container", "uid!=0")
    assert (loaded.host_name, loaded.cgroup, loaded.ring_buffer_kib) == (
        "node-7",
        "system.slice",
        1024,
    )
    assert loaded.stats_interval_s == 5.0
    assert loaded.plugins_deny == frozenset({"nats"}) and loaded.strict_plugins
    assert loaded.sinks == {"file": {"path": "/var/log/events.msgpack"}, "stdout": {}}
    assert loaded.event_options == {"net_flow_tcp_failed": {"syn_timeout_s": "3"}}


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hostcore.toml"
    path.write_text('enable = ["flows"]\nhost_name = "file"\n')
    merged = config.with_overrides(config.load(path), host_name="flag", enable=None)
    assert (merged.host_name, merged.enable) == ("flag", ("flows",))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stdout", ("stdout", {})),
        ("file:path=events.msgpack", ("file", {"path": "events.msgpack"})),
        (
            "nats:url=nats://127.0.0.1:4222,stream=x",
            ("nats", {"url": "nats://127.0.0.1:4222", "stream": "x"}),
        ),
        ("socket:addr=[::1]:9000", ("socket", {"addr": "[::1]:9000"})),
    ],
)
def test_sink_flag_name_ends_at_the_first_colon(
    text: str, expected: tuple[str, dict[str, str]]
) -> None:
    assert config.parse_sink(text) == expected


@pytest.mark.parametrize("text", ["file:path", ":path=x", "file:=x"])
def test_bad_sink_flag(text: str) -> None:
    with pytest.raises(ConfigError, match="--sink"):
        config.parse_sink(text)


def test_empty_enable_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "hostcore.toml"
    path.write_text("enable = []\n")
    with pytest.raises(ConfigError, match="enable must name at least one"):
        config.load(path)


def test_sink_option_values_must_be_scalars(tmp_path: Path) -> None:
    path = tmp_path / "hostcore.toml"
    path.write_text("[sinks.file]\npath = ['a']\n")
    with pytest.raises(ConfigError, match=r"'sinks\.file\.path' must be a string or number"):
        config.load(path)
