"""Layers point one way: pure rules <- services <- Airflow glue <- DAGs. Below the glue, nothing imports
airflow (so rules and services run and test without it), and the pure layer does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "plugins" / "taxdome_qbo"
BELOW_GLUE = ["core", "services", "migrations", "demo", "paths.py"]
PURE = ["core"]
IO_MODULES = {
    "sqlalchemy",
    "requests",
    "httpx",
    "psycopg",
    "fsspec",
    "os",
    "subprocess",
    "socket",
    "quickbooks",
}


def python_files(parts: list[str]) -> list[Path]:
    files = []
    for part in parts:
        path = PACKAGE / part
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def imported_roots(path: Path) -> set[str]:
    return {module.split(".")[0] for module in imported_modules(path)}


@pytest.mark.parametrize("path", python_files(BELOW_GLUE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_below_the_glue_imports_airflow(path):
    assert "airflow" not in imported_roots(path)


@pytest.mark.parametrize("path", python_files(PURE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_pure_layer_does_no_io(path):
    assert not imported_roots(path) & IO_MODULES
    assert not {
        m for m in imported_modules(path) if m.startswith(("taxdome_qbo.services", "taxdome_qbo.hooks"))
    }


def test_the_package_is_hidden_from_the_airflow_plugin_scan():
    """Otherwise the scan imports hooks/warehouse.py as a top-level `warehouse`, shadowing real packages."""
    ignored = (PACKAGE.parent / ".airflowignore").read_text().split()
    assert "taxdome_qbo/" in ignored
