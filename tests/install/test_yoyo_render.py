"""``notify-sql render --yoyo``: the install as yoyo-migrations files, applied by yoyo.

yoyo itself applies the files (`yoyo apply --batch`), so its statement splitting,
transactions and dependency ordering are what is tested, not a stand-in.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from notify_sql.migrator import inspect, migrate
from notify_sql.sources import load_migrations, sql_root
from notify_sql.throwaway import SUPERUSER, ThrowawayPostgres
from notify_sql.yoyo import render_yoyo
from tests.install.test_cli import run
from tests.install.test_supabase_render import make_upgrade

YOYO = Path(sys.executable).parent / "yoyo"


def yoyo_apply(
    server: ThrowawayPostgres, dbname: str, folder: Path
) -> subprocess.CompletedProcess[str]:
    url = (
        f"postgresql+psycopg://{SUPERUSER}@/{quote(dbname)}"
        f"?host={quote(server.host)}&port={server.port}"
    )
    return subprocess.run(
        [str(YOYO), "apply", "--batch", "--no-config-file", "--database", url, str(folder)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def dbname(dsn: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]  # type: ignore[return-value]


def yoyo_applied(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT migration_id FROM _yoyo_migration ORDER BY 1")]


@pytest.mark.parametrize("schema", ["notify", "public"])
def test_yoyo_apply_installs_what_verify_accepts(
    tmp_path: Path, pg_server: ThrowawayPostgres, empty_dsn: str, schema: str
) -> None:
    files = render_yoyo(tmp_path, schema)
    assert [p.stem for p in files] == [
        *(f"notify_sql_{i:03d}_{m.path.stem}" for i, m in enumerate(load_migrations(), 1)),
        f"notify_sql_{len(load_migrations()) + 1:03d}_functions",
    ]
    result = yoyo_apply(pg_server, dbname(empty_dsn), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert yoyo_applied(empty_dsn) == [p.stem for p in files]
    verified = run("verify", "--dsn", empty_dsn, "--schema", schema)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert migrate(empty_dsn, schema) == []


def test_an_upgrade_adds_files_only_and_yoyo_applies_them(
    tmp_path: Path, pg_server: ThrowawayPostgres, empty_dsn: str
) -> None:
    root = tmp_path / "sql"
    shutil.copytree(sql_root(), root)
    folder = tmp_path / "migrations"
    first = render_yoyo(folder, root=root)
    # An app's own yoyo migration in the same folder, depending on notify-sql's tables.
    (folder / "app_0001_tables.sql").write_text(
        f"-- depends: {first[-1].stem}\nCREATE TABLE app_things (id int PRIMARY KEY);\n"
    )
    assert yoyo_apply(pg_server, dbname(empty_dsn), folder).returncode == 0
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    make_upgrade(root)
    second = render_yoyo(folder, root=root)
    assert [p.name for p in second] == [
        f"notify_sql_{len(first) + 1:03d}_{load_migrations(root)[-1].path.stem}.sql",
        f"notify_sql_{len(first) + 2:03d}_functions.sql",
    ]
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p not in second} == before
    assert render_yoyo(folder, root=root) == []

    result = yoyo_apply(pg_server, dbname(empty_dsn), folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert inspect(empty_dsn, root=root).drift == []
    assert migrate(empty_dsn, root=root) == []


def test_a_failing_file_leaves_nothing_behind(
    tmp_path: Path, pg_server: ThrowawayPostgres, empty_dsn: str
) -> None:
    """yoyo runs each file in one transaction: a statement failing late in a file undoes
    the statements before it, the notify-sql records and yoyo's mark included."""
    root = tmp_path / "sql"
    shutil.copytree(sql_root(), root)
    folder = tmp_path / "migrations"
    render_yoyo(folder, root=root)
    assert yoyo_apply(pg_server, dbname(empty_dsn), folder).returncode == 0
    (root / "migrations" / "0999_broken.sql").write_text(
        "CREATE TABLE half_done (id int PRIMARY KEY);\nSELECT 1 / 0;\n"
    )
    (broken,) = render_yoyo(folder, root=root)
    result = yoyo_apply(pg_server, dbname(empty_dsn), folder)
    assert result.returncode != 0
    assert "division by zero" in result.stdout + result.stderr
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT to_regclass('notify.half_done')").fetchone() == (None,)
    assert broken.stem not in yoyo_applied(empty_dsn)
    assert inspect(empty_dsn, root=root).drift == ["migration 0999_broken is not applied"]


def test_cli_renders_yoyo_files(tmp_path: Path) -> None:
    first = run("render", "--yoyo", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.splitlines()) == len(load_migrations()) + 1
    assert run("render", "--yoyo", str(tmp_path)).stdout.startswith("nothing to write")
    both = run("render", "--yoyo", str(tmp_path), "--supabase", str(tmp_path))
    assert both.returncode == 2 and "pass one" in both.stderr
