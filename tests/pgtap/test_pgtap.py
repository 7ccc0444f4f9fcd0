"""Runs the pgTAP suite (tests/pgtap/*.sql) with pg_prove, each file in a fresh install.

pgTAP lives in schema ``tap`` of the test database. Where the server has no pgTAP
packaged (the embedded PostgreSQL 18 wheel), the extension script packaged for another
local server (Debian's postgresql-NN-pgtap) is loaded into that schema instead: pgTAP is
plain SQL and PL/pgSQL and checks the server version at run time, so nothing is
downloaded and the same assertions run on every server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from notify_sql.throwaway import ThrowawayPostgres
from tests.helpers.gates import skip_or_fail

PGTAP_DIR = Path(__file__).parent
PGTAP_FILES = sorted(PGTAP_DIR.glob("*.sql"))
TAP_SCHEMA = "tap"
PACKAGED_PGTAP = Path("/usr/share/postgresql")
# Guard that stops an extension script run by psql outside CREATE EXTENSION.
_EXTENSION_GUARD = re.compile(r"^\\echo .*\\quit\s*$", re.MULTILINE)


def packaged_pgtap_script() -> Path | None:
    """The full install script of the newest pgTAP packaged for any local server."""
    for control in sorted(PACKAGED_PGTAP.glob("*/extension/pgtap.control"), reverse=True):
        version = re.search(r"^default_version\s*=\s*'([^']+)'", control.read_text(), re.M)
        script = control.with_name(f"pgtap--{version[1]}.sql") if version else None
        if script and script.is_file():
            return script
    return None


def install_pgtap(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {TAP_SCHEMA}")
        conn.execute(f"GRANT USAGE ON SCHEMA {TAP_SCHEMA} TO PUBLIC")
        try:
            conn.execute(f"CREATE EXTENSION pgtap SCHEMA {TAP_SCHEMA}")
            return
        # Not packaged for this server (PostgreSQL 18 reports 0A000, older ones 58P01).
        except (psycopg.errors.FeatureNotSupported, psycopg.errors.UndefinedFile):
            pass
        script = packaged_pgtap_script()
        if script is None:
            skip_or_fail(
                "pgTAP is not available: CREATE EXTENSION pgtap fails on this server and "
                f"no packaged pgtap script was found under {PACKAGED_PGTAP} "
                "(apt-get install postgresql-15-pgtap)"
            )
        conn.execute(f"SET search_path = {TAP_SCHEMA}")
        conn.execute(_EXTENSION_GUARD.sub("", script.read_text()))


def libpq_environment(dsn: str) -> dict[str, str]:
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE"}
    return {names[key]: str(value) for key, value in conninfo_to_dict(dsn).items() if key in names}


def test_the_suite_has_files() -> None:
    assert PGTAP_FILES, f"no pgTAP files in {PGTAP_DIR}"


@pytest.mark.parametrize("script", PGTAP_FILES, ids=[path.name for path in PGTAP_FILES])
def test_pgtap_file_passes(script: Path, dsn: str, pg_server: ThrowawayPostgres) -> None:
    pg_prove = shutil.which("pg_prove")
    if pg_prove is None:
        skip_or_fail("pg_prove is missing: apt-get install libtap-parser-sourcehandler-pgtap-perl")
    install_pgtap(dsn)
    result = subprocess.run(
        [pg_prove, "--psql-bin", str(pg_server.bindir / "psql"), "--failures", str(script)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, **libpq_environment(dsn)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All tests successful." in result.stdout, result.stdout
