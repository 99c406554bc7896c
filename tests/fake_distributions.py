"""Plugins for tests, installed as distributions without building one: a module and its
dist-info in a folder the test puts on PYTHONPATH."""

from __future__ import annotations

import textwrap
from pathlib import Path


def fake_distribution(where: Path, plugin: str, module_text: str) -> None:
    """An installed distribution ``hostcore-<plugin>`` whose entry point is ``plugin``."""
    (where / f"{plugin}_plugin.py").write_text(textwrap.dedent(module_text))
    dist_info = where / f"hostcore_{plugin}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: hostcore-{plugin}\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(f"[hostcore]\n{plugin} = {plugin}_plugin\n")
