"""The wheel is self-sufficient: built from the checkout, installed into a clean virtual
environment, it finds its SQL files inside itself and installs a database from a
directory that is not the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from notify_sql.sources import sql_root

REPOSITORY = Path(__file__).parents[2]
TIMEOUT_SECONDS = 300


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH or a virtualenv of the test run must not leak the checkout in.
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    }
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True, text=True, check=False, timeout=TIMEOUT_SECONDS, cwd=cwd,
        env=environment,
    )  # fmt: skip


def succeed(*command: str | Path, cwd: Path) -> str:
    result = run(*command, cwd=cwd)
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("dist")
    succeed(sys.executable, "-m", "build", "--wheel", "--outdir", outdir, REPOSITORY, cwd=outdir)
    (built,) = outdir.glob("notify_sql-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a new virtual environment holding only the wheel and its
    dependencies."""
    venv = tmp_path_factory.mktemp("venv")
    succeed(sys.executable, "-m", "venv", venv, cwd=venv)
    succeed(venv / "bin" / "pip", "install", "--quiet", wheel, cwd=venv)
    return venv / "bin"


def test_wheel_holds_every_sql_file_and_the_typing_marker(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    sql_files = {
        f"notify_sql/sql/{path.relative_to(sql_root()).as_posix()}"
        for folder in ("migrations", "functions", "runner")
        for path in (sql_root() / folder).rglob("*.sql")
    }
    assert sql_files, "no SQL files in the checkout"
    assert sql_files - names == set()
    assert "notify_sql/py.typed" in names


def test_installed_wheel_installs_a_database_from_its_own_files(
    installed: Path, empty_dsn: str, tmp_path: Path
) -> None:
    assert succeed(installed / "notify-sql", "--version", cwd=tmp_path).startswith("notify-sql")
    packaged_sql = succeed(
        installed / "python", "-c", "from notify_sql.sources import sql_root; print(sql_root())",
        cwd=tmp_path,
    ).strip()  # fmt: skip
    assert Path(packaged_sql).is_relative_to(installed.parent), packaged_sql

    migrated = succeed(installed / "notify-sql", "migrate", "--dsn", empty_dsn, cwd=tmp_path)
    assert "applied migration" in migrated
    verified = succeed(installed / "notify-sql", "verify", "--dsn", empty_dsn, cwd=tmp_path)
    assert "matches the files" in verified
