"""Operations: SIGHUP reopens output files (log rotation); output files are private."""

from __future__ import annotations

import signal
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import msgpack
import pytest
from support import (
    AcceptServer,
    Hostcore,
    both_ends,
    connect_once,
    flows,
    no_syncookies,
    wait_until,
)

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]


def read_events(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as stream:
        return list(msgpack.Unpacker(stream, raw=False))


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
