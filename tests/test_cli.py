"""The command line: listings, config-driven runs, and clear errors for bad input."""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from bpf_programs import hostcore_programs
from runs import HOSTCORE, Hostcore, both_ends, flows
from traffic import AcceptServer, connect_once, no_syncookies

from hostcore.probe.cgroup import cgroup2_mount


def hostcore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HOSTCORE, *args], capture_output=True, text=True, timeout=120)


def test_events_lists_the_flow_event_and_its_sets() -> None:
    result = hostcore("events")
    assert result.returncode == 0, result.stderr
    assert "net_flow_tcp_begin (id 2012, plugin net_flow)" in result.stdout
    lines = result.stdout.splitlines()
    assert "set flows: net_flow_tcp_begin, net_flow_tcp_end" in lines
    assert "set network_events: net_flow_tcp_begin, net_flow_tcp_end, net_flow_tcp_failed" in lines
    assert "  option [events.net_flow_tcp_failed] syn_timeout_s: " in result.stdout
    assert "dst_port: uint16" in result.stdout and "dst_dns: []string" in result.stdout


def test_plugins_lists_entry_points_with_their_distributions() -> None:
    result = hostcore("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("net_flow: loaded (hostcore-net-flow ") for line in lines)
    assert any(line.startswith("stdout: built in (hostcore ") for line in lines)
    assert any(line.startswith("file: built in (hostcore ") for line in lines)


@pytest.mark.live
@pytest.mark.usefixtures("root")
def test_doctor_passes_here() -> None:
    result = hostcore("doctor")
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("OK  ") == 6


@pytest.mark.live
@pytest.mark.usefixtures("root")
@pytest.mark.parametrize(
    ("enable", "enabled"),
    [
        ("flows", ["net_flow_tcp_begin", "net_flow_tcp_end"]),
        ("net_flow_tcp_begin", ["net_flow_tcp_begin"]),
    ],
)
def test_config_file_alone_enables_events_and_sinks(
    tmp_path: Path, enable: str, enabled: list[str]
) -> None:
    config = tmp_path / "hostcore.toml"
    run = Hostcore(tmp_path, ["--config", str(config)], cli_sink=False)
    config.write_text(
        textwrap.dedent(
            f"""
            enable = ["{enable}"]
            host_name = "from-config"
            [sinks.file]
            path = "{run.events_path}"
            """
        )
    )
    with AcceptServer() as server, no_syncookies(), run:
        client = connect_once("127.0.0.1", server.port)
        events = run.stop()
    assert flows(events, {server.port}) == Counter(both_ends(*client, "127.0.0.1", server.port))
    assert {event["host"] for event in events} == {"from-config"}
    assert run.log("ready")["events"] == enabled
    assert run.log("ready")["sinks"] == ["file"]


def expect_error(args: list[str], *needles: str) -> None:
    """The command fails with exit status 2, says each needle, and leaves nothing attached."""
    root = str(cgroup2_mount())
    before = hostcore_programs(root)
    result = hostcore(*args)
    assert result.returncode == 2, result.stderr
    for needle in needles:
        assert needle in result.stderr
    assert result.stderr.startswith("hostcore: error: ")
    assert hostcore_programs(root) == before


@pytest.mark.usefixtures("root")
def test_unknown_event() -> None:
    expect_error(
        ["run", "--events", "flows,net_flow_tcp_nope"],
        "unknown event or event set 'net_flow_tcp_nope'",
        "events: connection_scan, denied_domain, net_flow_tcp_begin, net_flow_tcp_end, "
        "net_flow_tcp_failed, unexpected_listener;",
        "sets: flows, network_events, signatures",
    )


@pytest.mark.usefixtures("root")
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--scope", "comm"], "scope 'comm': expected FIELD=VALUE[,VALUE...] or FIELD!=VALUE"),
        (["--scope", "user=0"], "unknown scope 'user' (known: comm, pid, uid, cgroup, container"),
        (["--events", "net_flow_tcp_begin.data.port=1"], "has no field 'port'"),
        (["--events", "net_flow_tcp_begin.data.dst_port=https"], "'dst_port' is a number"),
        (["--events", "flows.data.dst_port=1"], "'flows' is not one"),
        (["--events", "flows,net_flow_tcp_begin.data.dst_port=1"], "a whole --events flag"),
        (["--print-bpf", "--scope", "colour=red"], "unknown scope 'colour'"),
    ],
)
def test_bad_filters_name_the_problem(args: list[str], needle: str) -> None:
    expect_error(["run", *args], needle)


@pytest.mark.usefixtures("root")
def test_unknown_sink() -> None:
    expect_error(
        ["run", "--sink", "kafka:brokers=x"],
        "unknown sink 'kafka'",
        "file, forward, nats, socket, stdout",
    )


@pytest.mark.usefixtures("root")
def test_the_same_sink_twice() -> None:
    expect_error(["run", "--sink", "file:path=a", "--sink", "file:path=b"], "given twice")


@pytest.mark.usefixtures("root")
def test_unknown_sink_option() -> None:
    expect_error(
        ["run", "--sink", "file:pth=x"], "sink 'file' has no option pth", "path, mode, queue_size"
    )


@pytest.mark.usefixtures("root")
@pytest.mark.parametrize("size", ["0", "-1", "many"])
def test_bad_queue_size(size: str) -> None:
    expect_error(
        ["run", "--sink", f"file:path=x,queue_size={size}"],
        f"sink 'file': queue_size must be a whole number >= 1, got '{size}'",
    )


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        ("socket", "sink 'socket': needs address=unix:PATH or address=HOST:PORT"),
        ("socket:address=nowhere", "sink 'socket': address 'nowhere': expected unix:PATH"),
        ("forward:address=h:1,mode=x", "sink 'forward': mode must be one of packed, forward"),
        ("forward:address=h:1,ack=yes", "sink 'forward': ack must be true or false"),
        ("forward:address=h:1,tag={id}", "sink 'forward': tag '{id}': only {name} and {host}"),
        ("nats", "sink 'nats': needs url=nats://HOST:PORT"),
    ],
)
def test_bad_sink_options(sink: str, message: str) -> None:
    """Told before privileges are looked at: here to a process without capabilities."""
    unprivileged = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", HOSTCORE]
    result = subprocess.run(
        [*unprivileged, "run", "--sink", sink], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("hostcore: error: ")
    assert message in result.stderr


@pytest.mark.usefixtures("root")
@pytest.mark.parametrize(
    ("monitor", "needle"),
    [
        ("promethus", "unknown monitor 'promethus'; installed monitors: prometheus"),
        ("prometheus:port=1", "monitor 'prometheus' has no option port; its options: listen"),
        ("prometheus:listen=9464", "monitor 'prometheus': listen must be HOST:PORT or [IPv6]:PORT"),
    ],
)
def test_bad_monitor(monitor: str, needle: str) -> None:
    expect_error(["run", "--monitor", monitor], needle)


@pytest.mark.usefixtures("root")
def test_malformed_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("enable = [flows\n")
    expect_error(["run", "--config", str(config)], f"{config}: not valid TOML")


@pytest.mark.usefixtures("root")
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('enabel = ["flows"]', "unknown key 'enabel'"),
        ("ring_buffer_kib = 'big'", "'ring_buffer_kib' must be of type int"),
        ("ring_buffer_kib = 1000", "ring_buffer_kib must be a power of two"),
        ("[plugins]\nalow = []", "unknown key 'plugins.alow'"),
        ("sinks = 3", "'sinks' must be a table"),
        ("sinks = {}", "sinks must name at least one sink"),
        ("stats_interval_s = 0", "stats_interval_s must be > 0"),
        ("[dns]\nscope = 'pod'", "dns.scope must be one of cgroup, host, got 'pod'"),
        ("[dns]\nttl_floor_s = 10\nttl_ceiling_s = 5", "must satisfy 0 <= floor <= ceiling"),
        ("[dns]\nstore_size = true", "'dns.store_size' must be of type int"),
        ("[dns]\nstore_size = 0", "dns.store_size must be >= 1"),
        ("[dns]\nsize = 5", "unknown key 'dns.size'"),
        ("dns = 5", "'dns' must be a table"),
        ("scope = 'container'", "'scope' must be of type list"),
        ("scope = [1]", "'scope' must be a list of strings"),
        ("scope = ['colour=red']", "unknown scope 'colour'"),
        ("enable = 'flows'", "'enable' must be of type list"),
        ("poll_interval_ms = 1.5", "'poll_interval_ms' must be of type int"),
        ("[monitors]\nprometheus = 1", "'monitors.prometheus' must be a table"),
        ("[monitors.prometheus]\nlisten = ['a']", "'monitors.prometheus.listen' must be a string"),
    ],
)
def test_bad_config_values_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    config = tmp_path / "hostcore.toml"
    config.write_text(text + "\n")
    expect_error(["run", "--config", str(config)], str(config), needle)


@pytest.mark.usefixtures("root")
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[events.net_flow_tcp_nope]\nx = 1", "[events.net_flow_tcp_nope] names no installed"),
        (
            "[events.net_flow_tcp_failed]\ntimeout = 1",
            "event 'net_flow_tcp_failed' has no option timeout; its options: syn_timeout_s",
        ),
        (
            "[events.net_flow_tcp_failed]\nsyn_timeout_s = 'soon'",
            "event 'net_flow_tcp_failed': syn_timeout_s must be a number >= 0.001, got 'soon'",
        ),
        ("[events.net_flow_tcp_failed]\nsyn_timeout_s = [1]", "must be a string or number"),
    ],
)
def test_bad_event_options_name_the_event_and_option(
    tmp_path: Path, text: str, needle: str
) -> None:
    config = tmp_path / "hostcore.toml"
    config.write_text(text + "\n")
    expect_error(["run", "--config", str(config), "--events", "net_flow_tcp_failed"], needle)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda path: path.mkdir(), "cannot read: Is a directory"),
        (lambda path: path.write_bytes(b"enable = ['\xff']\n"), "not valid TOML"),
    ],
    ids=["directory", "not-utf-8"],
)
def test_unreadable_config_file(
    tmp_path: Path, make: Callable[[Path], object], needle: str
) -> None:
    config = tmp_path / "hostcore.toml"
    make(config)
    result = hostcore("events", "--config", str(config))
    assert result.returncode == 2
    assert f"hostcore: error: {config}: {needle}" in result.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    result = hostcore("events", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "nope.toml: cannot read: No such file or directory" in result.stderr


@pytest.mark.usefixtures("root")
def test_without_capabilities_run_names_the_missing_ones() -> None:
    """Root with an empty capability set (setpriv) stands in for an unprivileged user."""
    result = subprocess.run(
        ["setpriv", "--bounding-set=-all", "--inh-caps=-all", HOSTCORE, "run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "needs capabilities this process lacks: CAP_NET_ADMIN, CAP_PERFMON, CAP_BPF" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("events", "wanted"),
    [
        ("net_flow_tcp_begin", "-DWANT_TCP_SYN_ACK -DWANT_DNS_ANSWER"),
        (
            "flows",
            "-DWANT_TCP_SYN_ACK -DWANT_TCP_FIN_RST -DWANT_DNS_ANSWER -DWANT_TCP_TOTALS"
            " -DHELD_ENDS=16384",
        ),
        (
            "net_flow_tcp_failed",
            "-DWANT_TCP_SYN_ACK -DWANT_TCP_FIN_RST -DWANT_TCP_SYN -DWANT_DNS_ANSWER",
        ),
    ],
)
def test_print_bpf_shows_the_filter_compiled_from_the_enabled_events(
    events: str, wanted: str
) -> None:
    result = hostcore("run", "--print-bpf", "--events", events)
    assert result.returncode == 0, result.stderr
    first, *source = result.stdout.splitlines()
    assert first.startswith(f"// cflags: {wanted} -DRING_PAGES=")
    assert "int hc_flow_ingress(struct __sk_buff *skb)" in source


def test_every_hook_is_documented_with_its_signature() -> None:
    """CONTRIBUTING's hook table cannot drift from hostcore/hookspecs.py."""
    import inspect

    from hostcore import hookspecs

    contributing = (Path(__file__).parent.parent / "CONTRIBUTING.md").read_text()
    hooks = [name for name in dir(hookspecs) if name.startswith("hostcore_")]
    assert hooks
    for name in hooks:
        parameters = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"`{name}({parameters})`" in contributing


def test_a_listing_whose_reader_is_gone_ends_quietly() -> None:
    """`hostcore run --print-bpf | head -1`: the reader may leave before the listing ends."""
    read_end, write_end = os.pipe()
    writer = subprocess.Popen(
        [HOSTCORE, "run", "--print-bpf"], stdout=write_end, stderr=subprocess.PIPE
    )
    os.close(write_end)
    os.close(read_end)  # gone before the first write
    assert writer.wait(timeout=60) == 0
    assert writer.stderr is not None and writer.stderr.read() == b""


def test_signatures_lists_the_built_in_signatures_with_their_metadata() -> None:
    result = hostcore("signatures")
    assert result.returncode == 0, result.stderr
    for line in [
        "denied_domain (id 6001, plugin signatures): Connection to a denied domain",
        "  HCS-2 version 1.0.0, severity medium",
        "  tags: mitre-attack:T1046, discovery",
        "  properties: Technique=Network Service Discovery, "
        "id=attack-pattern--e3a12395-188d-4051-9a16-ea8e14d07b88",
        "  consumes: net_flow_tcp_begin.data.conn_direction=outgoing, "
        "net_flow_tcp_failed.data.conn_direction=outgoing (if installed)",
        "  option allowed_ports: local ports that may accept connections (default [22, 80, 443])",
    ]:
        assert line in result.stdout.splitlines()
    events = hostcore("events")
    assert "set signatures: denied_domain, connection_scan, unexpected_listener" in events.stdout


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ("[signatures.nope]\n", "[signatures.nope] names no installed signature; installed: "),
        (
            "[signatures.connection_scan]\nwindow = 3\n",
            "signature 'connection_scan' has no option window; its options: max_distinct, "
            "window_s, max_processes",
        ),
        (
            "[signatures.connection_scan]\nwindow_s = 'soon'\n",
            "signature 'connection_scan': window_s must be a number >= 0.001, got 'soon'",
        ),
        (
            '[signatures.unexpected_listener]\nallowed_ports = ["ssh"]\n',
            "signature 'unexpected_listener': allowed_ports must be a list of port numbers, "
            "got ['ssh']",
        ),
    ],
    ids=["unknown-signature", "unknown-option", "bad-number", "bad-ports"],
)
def test_bad_signature_options_stop_the_run_with_a_clear_error(
    tmp_path: Path, table: str, needle: str
) -> None:
    config = tmp_path / "hostcore.toml"
    config.write_text(table)
    result = hostcore("run", "--events", "signatures", "--config", str(config))
    assert result.returncode == 2
    # Last, after any warning a signature that started first gave (an empty deny list)
    assert result.stderr.splitlines()[-1].startswith("hostcore: error: ")
    assert needle in result.stderr and "Traceback" not in result.stderr
