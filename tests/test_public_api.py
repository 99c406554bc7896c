"""The in-repository plugins use only hostcore's public API: they are the model a third
party copies, so what they need must be exported, and nothing else reached into."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hostcore

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
SOURCES = sorted(PLUGINS.glob("*/hostcore_*/*.py"))


def hostcore_imports(path: Path) -> list[str]:
    """Every module of hostcore that ``path`` imports, as ``module`` or ``module.name``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hostcore"):
            found += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("hostcore")]
    return [name for name in found if name.split(".")[0] == "hostcore"]


def test_the_plugins_are_there() -> None:
    assert len({path.parent.parent.name for path in SOURCES}) == 4


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PLUGINS)))
def test_a_plugin_imports_only_what_hostcore_exports(path: Path) -> None:
    for name in hostcore_imports(path):
        module, _, attribute = name.rpartition(".")
        assert module == "hostcore", f"{name}: import it from hostcore, export it there"
        assert attribute in hostcore.__all__, f"{attribute} is not in hostcore.__all__"
