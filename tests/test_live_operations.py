"""Operations: SIGHUP reopens output files (log rotation); output files are private;
credentials never reach the logs."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from fake_distributions import fake_distribution
from runs import HOSTCORE, Hostcore, both_ends, flows, read_events
from traffic import AcceptServer, connect_once, no_syncookies
from waiting import wait_until

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

# A sink whose errors quote its URL and a token, as client libraries' errors often do.
LEAKY_SINK = """
from hostcore import SinkSpec, hookimpl


class Leaky:
    def __init__(self, url):
        self.url = url

    def write(self, packed, event):
        raise ConnectionError(f"POST {self.url} failed (sent token=abc123)")

    def flush(self):
        pass

    def close(self):
        pass


def open_leaky(options):
    if "refused" in options:
        raise ConnectionRefusedError(f"cannot reach {options['url']}")
    return Leaky(options["url"])


@hookimpl
def hostcore_register_sinks(register):
    register(SinkSpec(name="leaky", open=open_leaky, options={"url": "", "refused": ""}))
"""
SECRETS = ("s3cret", "hunter2", "abc123")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sighup_reopens_the_output_file_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "events.msgpack"
    rotated = tmp_path / "events.msgpack.1"
    args = ["--sink", f"file:path={path}"]
    with (
        AcceptServer() as server,
        no_syncookies(),
        Hostcore(tmp_path, args, cli_sink=False) as hostcore,
    ):
        before = connect_once("127.0.0.1", server.port)
        wait_until(lambda: flows(read_events(path), {server.port}), "the first events written")
        path.rename(rotated)  # what logrotate does, then it sends SIGHUP
        hostcore.send(signal.SIGHUP)
        after = connect_once("127.0.0.1", server.port)
        hostcore.stop()
    assert flows(read_events(rotated), {server.port}) == Counter(
        both_ends(*before, "127.0.0.1", server.port)
    )
    assert flows(read_events(path), {server.port}) == Counter(
        both_ends(*after, "127.0.0.1", server.port)
    )
    assert mode(path) == mode(rotated) == 0o600
    assert hostcore.log("output file reopened")["path"] == str(path)


@pytest.mark.parametrize(("option", "expected"), [("", 0o600), (",mode=0640", 0o640)])
def test_output_files_are_private_unless_configured(
    tmp_path: Path, option: str, expected: int
) -> None:
    path = tmp_path / "events.msgpack"
    with Hostcore(tmp_path, ["--sink", f"file:path={path}{option}"], cli_sink=False) as hostcore:
        hostcore.stop()
    assert mode(path) == expected


def test_no_credentials_in_logs_or_errors(tmp_path: Path) -> None:
    fake_distribution(tmp_path, "leaky", LEAKY_SINK)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    refused = subprocess.run(
        [HOSTCORE, "run", "--sink", "leaky:url=nats://alice:s3cret@127.0.0.1:1,refused=1"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "cannot reach nats://***@127.0.0.1:1" in refused.stderr
    args = ["--sink", "leaky:url=https://bob:hunter2@collector.test/"]
    with AcceptServer() as server, Hostcore(tmp_path, args, env=env) as hostcore:
        connect_once("127.0.0.1", server.port)
        wait_until(lambda: any("sink write failed" in line for line in hostcore.stderr_lines),
                   "the failed write to be logged")  # fmt: skip
        hostcore.stop()
    logged = "".join(hostcore.stderr_lines)
    assert "POST https://***@collector.test/ failed (sent token=***)" in logged  # traceback too
    assert not [secret for secret in SECRETS if secret in logged + refused.stderr]
