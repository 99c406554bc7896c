"""The plugin examples in CONTRIBUTING.md, built as wheels, installed, discovered, and run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import tshark_oracle
from runs import HOSTCORE, Hostcore, both_ends, flows
from traffic import AcceptServer, connect_once, no_syncookies

CONTRIBUTING = Path(__file__).parent.parent / "CONTRIBUTING.md"
FILE_BLOCK = re.compile(r"<!-- file: (?P<path>\S+) -->\n```\w*\n(?P<body>.*?)```", re.S)
EXAMPLES = ("hostcore-syn-sent", "hostcore-logfmt", "hostcore-plaintext")


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


@pytest.fixture(scope="module")
def installed_examples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The examples' sources, once their wheels are installed."""
    source = tmp_path_factory.mktemp("examples")
    for match in FILE_BLOCK.finditer(CONTRIBUTING.read_text()):
        path = source / match["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(match["body"])
    assert {p.name for p in source.iterdir()} == set(EXAMPLES)
    wheels = source / "wheels"
    for name in EXAMPLES:
        pip(
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source / name),
        )
    pip("uninstall", "-q", "-y", *EXAMPLES)  # leftovers of an interrupted run, if any
    pip("install", "-q", "--no-deps", *map(str, wheels.glob("*.whl")))
    try:
        yield source
    finally:
        pip("uninstall", "-q", "-y", *EXAMPLES)


@pytest.mark.usefixtures("installed_examples")
def test_examples_are_discovered_through_entry_points() -> None:
    listing = subprocess.run([HOSTCORE, "plugins"], capture_output=True, text=True, check=True)
    assert "syn_sent: loaded (hostcore-syn-sent 0.1.0) provides tcp_syn_sent" in listing.stdout
    assert "logfmt: loaded (hostcore-logfmt 0.1.0) provides logfmt" in listing.stdout
    assert (
        "plaintext: loaded (hostcore-plaintext 0.1.0) provides plaintext_protocol" in listing.stdout
    )
    signatures = subprocess.run(
        [HOSTCORE, "signatures"], capture_output=True, text=True, check=True
    ).stdout
    assert (
        "plaintext_protocol (id 9002, plugin plaintext): Connection over a cleartext login "
        "protocol" in signatures
    )
    # Installed as wheels, not editable: the modules come from site-packages.
    import hostcore_logfmt
    import hostcore_plaintext
    import hostcore_syn_sent

    for module in (hostcore_syn_sent, hostcore_logfmt, hostcore_plaintext):
        assert "site-packages" in str(module.__file__)


def test_example_sink_passes_its_own_test_with_the_kit(
    installed_examples: Path, tmp_path: Path
) -> None:
    """A fresh pytest run finds the kit's fixtures through the pytest11 entry point."""
    tests = installed_examples / "hostcore-logfmt" / "tests"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout  # in both output formats


@pytest.mark.live
@pytest.mark.usefixtures("root", "installed_examples")
def test_example_event_and_sink_run(tmp_path: Path) -> None:
    logfmt = tmp_path / "events.log"
    args = ["--events", "flows,examples", "--sink", f"logfmt:path={logfmt}"]
    with AcceptServer() as server, no_syncookies(), Hostcore(tmp_path, args) as hostcore:
        clients = [connect_once("127.0.0.1", server.port) for _ in range(5)]
        events = hostcore.stop()
    expected = Counter(f for c in clients for f in both_ends(*c, "127.0.0.1", server.port))
    assert flows(events, {server.port}) == expected
    syns = [
        e for e in events if e["name"] == "tcp_syn_sent" and e["data"]["dst_port"] == server.port
    ]
    assert len(syns) == len(clients)  # one SYN leaves the client socket per connection
    assert all(e["data"]["dst_dns"] == [] for e in syns)  # the store's reply: no name was resolved
    assert all(e["context"]["pid"] == os.getpid() for e in syns)  # these tests connected
    # The logfmt sink got every event the file sink got, in the same order.
    lines = logfmt.read_text().splitlines()
    assert len(lines) == len(events)
    for line, event in zip(lines, events, strict=True):
        assert line.startswith(f"name={event['name']} host={event['host']} ")


@pytest.mark.usefixtures("installed_examples")
def test_example_event_replays_offline(tmp_path: Path) -> None:
    """The command CONTRIBUTING gives: every SYN the capture's host sent, as tshark counts them."""
    capture = tshark_oracle.CORPUS / "zeek_wikipedia.pcap"
    logfmt = tmp_path / "events.log"
    subprocess.run(
        [
            *(HOSTCORE, "replay", str(capture), "--local-net", "141.142.220.0/24"),
            *("--events", "examples", "--sink", f"logfmt:path={logfmt}"),
        ],
        check=True,
        capture_output=True,
    )
    syns = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(capture),
            "-Y",
            "tcp.flags & 0x17 == 0x02 && ip.src == 141.142.220.0/24",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    lines = logfmt.read_text().splitlines()
    assert len(lines) == len(syns) > 0
    assert all(line.startswith("name=tcp_syn_sent ") for line in lines)
    assert any("upload.wikimedia.org" in line for line in lines)  # names from the capture's DNS


@pytest.mark.live
@pytest.mark.usefixtures("root", "installed_examples")
def test_example_signature_findings_reach_the_sinks(tmp_path: Path) -> None:
    logfmt = tmp_path / "findings.log"
    with AcceptServer() as watched, AcceptServer() as other, no_syncookies():
        config = tmp_path / "hostcore.toml"
        config.write_text(f"[signatures.plaintext_protocol]\nports = [{watched.port}]\n")
        args = ["--events", "plaintext_protocol", "--config", str(config)]
        args += ["--sink", f"logfmt:path={logfmt}"]
        with Hostcore(tmp_path, args) as hostcore:
            clients = [connect_once("127.0.0.1", watched.port) for _ in range(3)]
            connect_once("127.0.0.1", other.port)
            events = hostcore.stop()
    found = [e for e in events if e["data"]["triggered_by"][0]["data"]["dst_port"] == watched.port]
    assert Counter(e["data"]["triggered_by"][0]["data"]["src_port"] for e in found) == Counter(
        port for _, port in clients
    )
    assert {e["name"] for e in events} == {"plaintext_protocol"}  # the begins fed it only
    for finding in found:
        assert finding["data"]["signature"]["id"] == "EX-1"
        assert finding["data"]["dst_port"] == watched.port
        assert finding["context"]["pid"] == os.getpid()  # these tests connected
    lines = logfmt.read_text().splitlines()
    assert len(lines) == len(events)
    assert all(line.startswith("name=plaintext_protocol ") for line in lines)
