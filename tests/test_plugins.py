"""Plugin discovery through real entry points: load errors, strict mode, allow/deny, clashes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from fake_distributions import fake_distribution
from runs import HOSTCORE
from tshark_oracle import CORPUS


def hostcore(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(where)}
    env.pop("HOSTCORE_STRICT_PLUGINS", None)
    return subprocess.run([HOSTCORE, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    fake_distribution(tmp_path, "broken", "import a_module_that_does_not_exist\n")
    return tmp_path


def test_import_error_is_reported_by_plugin_name(broken: Path) -> None:
    result = hostcore(broken, "plugins")
    assert result.returncode == 1
    assert "broken: error (hostcore-broken 0.1)" in result.stdout
    assert "cannot import broken_plugin: ModuleNotFoundError" in result.stdout
    assert "a_module_that_does_not_exist" in result.stdout
    assert "net_flow: loaded" in result.stdout  # the others still load


def test_strict_mode_makes_a_load_error_fatal(broken: Path) -> None:
    result = hostcore(broken, "events", "--strict-plugins")
    assert result.returncode == 2
    assert "hostcore: error: plugin 'broken' (hostcore-broken) cannot import" in result.stderr


def test_strict_mode_from_the_environment(broken: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(broken), "HOSTCORE_STRICT_PLUGINS": "1"}
    result = subprocess.run([HOSTCORE, "events"], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert "plugin 'broken'" in result.stderr


def test_denied_plugin_is_not_imported(broken: Path) -> None:
    config = broken / "hostcore.toml"
    config.write_text('[plugins]\ndeny = ["broken"]\n')
    result = hostcore(broken, "plugins", "--config", str(config), "--strict-plugins")
    assert result.returncode == 0, result.stdout
    assert "broken: denied (hostcore-broken 0.1)" in result.stdout


def test_allow_list_loads_only_the_named_plugins(broken: Path) -> None:
    config = broken / "hostcore.toml"
    config.write_text('[plugins]\nallow = ["net_flow"]\n')
    result = hostcore(broken, "plugins", "--config", str(config))
    assert result.returncode == 0, result.stdout
    assert "broken: not allowed" in result.stdout
    assert "signatures: not allowed" in result.stdout
    assert "net_flow: loaded" in result.stdout
    # The core's own sinks are not plugins an allow list must name: the default stays.
    assert "stdout: built in" in result.stdout
    assert "file: built in" in result.stdout


def test_denying_a_built_in_sink_is_an_error_that_says_why(broken: Path) -> None:
    config = broken / "hostcore.toml"
    config.write_text('[plugins]\ndeny = ["file", "broken"]\n')
    result = hostcore(broken, "plugins", "--config", str(config))
    assert result.returncode == 2
    assert "[plugins] deny names the core's own sink(s) file: they are not plugins" in (
        result.stderr
    )


def test_an_allow_list_without_stdout_still_prints_events(broken: Path) -> None:
    config = broken / "hostcore.toml"
    config.write_text('[plugins]\nallow = ["net_flow"]\n')
    capture = CORPUS / "zeek_tcp_syn-synack.pcap"
    result = hostcore(broken, "replay", str(capture), "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["name"] for line in result.stdout.splitlines()] == [
        "net_flow_tcp_begin"
    ]


ONE_HOOK = """
from hostcore import hookimpl

@hookimpl
def {hook}(register):
    {body}
"""


def assert_load_error_listed(where: Path, plugin: str, error: str) -> None:
    listing = hostcore(where, "plugins")
    assert listing.returncode == 1
    assert f"{plugin}: error (hostcore-{plugin} 0.1)" in listing.stdout
    assert error in listing.stdout


@pytest.mark.parametrize(
    ("hook", "body", "error"),
    [
        (
            "hostcore_register_event",
            "pass",
            "has invalid hooks: PluginValidationError: unknown hook 'hostcore_register_event'",
        ),
        (
            "hostcore_register_events",
            "raise RuntimeError('boom')",
            "failed in hostcore_register_events: RuntimeError: boom",
        ),
    ],
    ids=["unknown-hook", "raises-while-registering"],
)
def test_bad_plugin_is_reported_and_the_others_still_load(
    tmp_path: Path, hook: str, body: str, error: str
) -> None:
    fake_distribution(tmp_path, "bad", ONE_HOOK.format(hook=hook, body=body))
    assert_load_error_listed(tmp_path, "bad", error)
    events = hostcore(tmp_path, "events")
    assert events.returncode == 0
    assert "net_flow_tcp_begin (id 2012, plugin net_flow)" in events.stdout


NO_ARGUMENTS = """
from hostcore import hookimpl

@hookimpl
def hostcore_register_events():
    pass
"""


def test_a_hook_may_take_fewer_arguments_than_its_spec(tmp_path: Path) -> None:
    """pluggy's calling convention: an implementation names the arguments it uses, so
    hooks can gain arguments later without breaking the plugins already installed."""
    fake_distribution(tmp_path, "fewer", NO_ARGUMENTS)
    listing = hostcore(tmp_path, "plugins")
    assert listing.returncode == 0, listing.stdout
    assert "fewer: loaded (hostcore-fewer 0.1)" in listing.stdout
    assert hostcore(tmp_path, "events").returncode == 0


def test_a_hook_argument_the_spec_lacks_is_a_load_error_naming_the_plugin(
    tmp_path: Path,
) -> None:
    text = ONE_HOOK.format(hook="hostcore_register_events", body="pass").replace(
        "(register)", "(register, flavour)"
    )
    fake_distribution(tmp_path, "extra", text)
    assert_load_error_listed(
        tmp_path, "extra", "plugin 'extra' (hostcore-extra) has invalid hooks: "
    )
    listing = hostcore(tmp_path, "plugins")
    assert "{'flavour'} are declared in the hookimpl but can not be found in the hookspec" in (
        listing.stdout
    )


DECLARES_EVENT = """
from hostcore import EventSpec, PacketKind, hookimpl

@hookimpl
def hostcore_register_events(register):
    register(EventSpec(name={name!r}, id={id}, fields=(), sets=("mine",),
                       depends_on="", needs=PacketKind.NONE, handler=object))
"""


@pytest.mark.parametrize(
    ("name", "event_id", "needles"),
    [
        (
            "my_event",
            2012,
            [
                "'my_event' (id 2012) from plugin 'clash'",
                "'net_flow_tcp_begin' (id 2012) from plugin 'net_flow'",
            ],
        ),
        ("net_flow_tcp_begin", 7, ["'net_flow_tcp_begin' (id 7) from plugin 'clash'"]),
        ("my_loss", 1, ["'my_loss' (id 1) from plugin 'clash' clashes with the core's"]),
        ("lost_events", 8, ["'lost_events' (id 8) from plugin 'clash' clashes with the core's"]),
    ],
    ids=["same-id", "same-name", "core-id", "core-name"],
)
def test_event_name_or_id_clash_names_both_sides(
    tmp_path: Path, name: str, event_id: int, needles: list[str]
) -> None:
    fake_distribution(tmp_path, "clash", DECLARES_EVENT.format(name=name, id=event_id))
    result = hostcore(tmp_path, "events")
    assert result.returncode == 2
    assert result.stderr.startswith("hostcore: error: ")
    for needle in needles:
        assert needle in result.stderr


def test_two_distributions_with_one_plugin_name(tmp_path: Path) -> None:
    fake_distribution(tmp_path, "stdout", "")  # hostcore itself already uses this name
    result = hostcore(tmp_path, "plugins")
    assert result.returncode == 1
    # The built-in sink is registered first: the entry point is the one turned away.
    assert "uses the plugin name of hostcore 0.2.0" in result.stdout
    assert "uninstall one of them" in result.stdout


def test_module_names_that_look_like_hooks_are_not_hooks(tmp_path: Path) -> None:
    """Only functions marked with @hookimpl count: `import hostcore_x` is fine."""
    (tmp_path / "hostcore_helpers.py").write_text("VALUE = 1\n")
    fake_distribution(tmp_path, "tidy", "import hostcore_helpers\nhostcore_version = '1'\n")
    result = hostcore(tmp_path, "plugins")
    assert result.returncode == 0, result.stdout
    assert "tidy: loaded" in result.stdout


def test_strict_environment_wins_over_a_config_that_says_false(broken: Path) -> None:
    config = broken / "hostcore.toml"
    config.write_text("[plugins]\nstrict = false\n")
    env = {**os.environ, "PYTHONPATH": str(broken), "HOSTCORE_STRICT_PLUGINS": "true"}
    result = subprocess.run(
        [HOSTCORE, "events", "--config", str(config)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert "plugin 'broken'" in result.stderr


SIGNATURES = """
from hostcore import SignatureSpec, hookimpl


def spec(name, event_id, consumes):
    return SignatureSpec(name=name, id=event_id, signature_id=name.upper(), title=name,
                         version="1", severity="low", description="", consumes=consumes,
                         handler=object)


@hookimpl
def hostcore_register_signatures(register):
    {body}
"""


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            "register(spec('a', 9101, ('b',))); register(spec('b', 9102, ('a',)))",
            "cannot load signature 'a': is in a cycle of signatures: a -> b -> a",
        ),
        (
            "register(spec('c', 9101, ('net_flow_udp_end',)))",
            "cannot load signature 'c': consumes 'net_flow_udp_end', which no installed plugin",
        ),
    ],
    ids=["cycle", "unknown-event"],
)
def test_a_signature_that_cannot_load_is_a_load_error(
    tmp_path: Path, body: str, error: str
) -> None:
    fake_distribution(tmp_path, "sigs", SIGNATURES.format(body=body))
    assert_load_error_listed(tmp_path, "sigs", error)
    signatures = hostcore(tmp_path, "signatures")
    assert signatures.returncode == 0
    assert "denied_domain (id 6001, plugin signatures)" in signatures.stdout  # others load
    strict = hostcore(tmp_path, "signatures", "--strict-plugins")
    assert strict.returncode == 2 and error in strict.stderr


def test_a_finding_id_clash_names_both_plugins(tmp_path: Path) -> None:
    fake_distribution(tmp_path, "sigs", SIGNATURES.format(body="register(spec('x', 2012, ()))"))
    result = hostcore(tmp_path, "signatures")
    assert result.returncode == 2
    assert (
        "signature 'x' (id 2012) from plugin 'sigs' clashes with 'net_flow_tcp_begin' "
        "(id 2012) from plugin 'net_flow'" in result.stderr
    )
