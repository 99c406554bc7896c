"""Packaging: the systemd unit passes `systemd-analyze verify` (no running manager needed),
and the wheel holds every package and the C source."""

from __future__ import annotations

import subprocess
import sys
import zipfile
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


def test_the_wheel_ships_every_package_and_the_bpf_source(tmp_path: Path) -> None:
    """pyproject.toml lists its packages (bpf/ is mapped in as _hostcore_bpf): none forgotten."""
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, str(REPO), "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("hostcore-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    packages = {p.parent.relative_to(REPO) for p in (REPO / "hostcore").rglob("__init__.py")}
    for package in packages:
        assert f"{package}/__init__.py" in shipped
    assert "_hostcore_bpf/net_packet_flow_base.c" in shipped
    assert "hostcore/py.typed" in shipped
