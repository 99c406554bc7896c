"""The systemd unit in packaging/ passes `systemd-analyze verify` (no running manager needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "packaging" / "hostcore.service"
INSTALLED_AT = "/opt/hostcore"  # where the unit expects the clone (and its .venv)


def verify(text: str, where: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of ``text`` with this clone standing in for /opt/hostcore."""
    unit = where / UNIT.name
    unit.write_text(text.replace(INSTALLED_AT, str(REPO)))
    command = ["systemd-analyze", "verify", str(unit)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_systemd_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_AT}/.venv/bin/hostcore run " in text
    result = verify(text, tmp_path)
    assert (result.returncode, result.stderr) == (0, "")


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """Unknown keys are only warnings to systemd: the check above must look at stderr too."""
    result = verify(UNIT.read_text().replace("KillSignal=", "KillSignl="), tmp_path)
    assert "Unknown key 'KillSignl'" in result.stderr
