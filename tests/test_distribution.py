"""The project is an installed distribution: `taxdome_qbo` and `qbo_emulator` import from anywhere without
PYTHONPATH, the SQL of include/sql is its package data, and a built wheel carries every file of the package
and finds its SQL once installed somewhere else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "plugins" / "taxdome_qbo"
SQL = REPO / "include" / "sql"
UV = str(Path(sys.executable).with_name("uv"))

# Loads every statement of include/sql through the package and says where the package was imported from.
LOAD_EVERY_STATEMENT = """
import json, sys
from importlib.metadata import entry_points
import qbo_emulator, taxdome_qbo
from taxdome_qbo.services import sql
names = json.loads(sys.argv[1])
texts = {name: sql.statement(name).text for name in names}
providers = [e.value for e in entry_points(group="apache_airflow_provider") if e.value.startswith("taxdome_qbo")]
print(json.dumps({"package": taxdome_qbo.__file__, "emulator": qbo_emulator.__file__, "texts": texts,
                  "providers": providers}))
"""


def sql_files() -> dict[str, str]:
    """`staging/select_recent_batches` -> its text, for every file of include/sql."""
    return {
        path.relative_to(SQL).with_suffix("").as_posix(): path.read_text(encoding="utf-8")
        for path in SQL.rglob("*.sql")
    }


def package_files() -> set[str]:
    """Every file the package folder holds (the SQL through its symlink), as wheel paths."""
    return {
        "taxdome_qbo/" + path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def without_pythonpath() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def run_loader(python: str, cwd: Path) -> dict:
    done = subprocess.run(
        [python, "-c", LOAD_EVERY_STATEMENT, json.dumps(sorted(sql_files()))],
        env=without_pythonpath(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_package_imports_from_anywhere_and_loads_its_sql(tmp_path):
    loaded = run_loader(sys.executable, tmp_path)

    assert loaded["package"] == str(PACKAGE / "__init__.py"), "the editable install points at plugins/"
    assert loaded["emulator"] == str(REPO / "qbo_emulator" / "__init__.py")
    assert loaded["texts"] == sql_files() and loaded["texts"]
    assert loaded["providers"] == ["taxdome_qbo.provider_info:get_provider_info"]


def test_the_sql_stays_in_include_and_is_the_packages_data():
    assert (PACKAGE / "sql").is_symlink()
    assert (PACKAGE / "sql").resolve() == SQL


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [UV, "build", "--wheel", "--no-build-isolation", "--python", sys.executable, "--out-dir", str(out)],
        cwd=REPO,
        env=without_pythonpath(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("taxdome_qbo-*.whl")
    return built


def test_the_wheel_carries_every_file_of_the_package_and_nothing_compiled(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())

    assert package_files() <= names, sorted(package_files() - names)
    assert {f"taxdome_qbo/sql/{name}.sql" for name in sql_files()} <= names
    assert "qbo_emulator/__main__.py" in names and "qbo_emulator/README.md" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    assert "provider_info = taxdome_qbo.provider_info:get_provider_info" in (
        zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_the_installed_wheel_finds_its_sql_away_from_the_project(wheel, tmp_path):
    """A virtualenv of its own holds the wheel; the dependencies come from this one's site-packages (a path
    only: its editable install of the project is not loaded), as a managed Airflow's image provides them."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [UV, "pip", "install", "--quiet", "--no-deps", "--python", python, str(wheel)],
        check=True,
        timeout=300,
    )
    site_packages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site_packages) / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    loaded = run_loader(python, tmp_path)

    assert loaded["package"] == str(Path(site_packages) / "taxdome_qbo" / "__init__.py")
    assert loaded["emulator"] == str(Path(site_packages) / "qbo_emulator" / "__init__.py")
    assert loaded["texts"] == sql_files()
    assert loaded["providers"] == ["taxdome_qbo.provider_info:get_provider_info"]
