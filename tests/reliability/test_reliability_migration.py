"""``migrate`` applies function changes while four workers drain the queue.

A copy of the sql tree with claim_pending_jobs' body changed is applied, then the
original again, several times over, while four workers claim and complete. The
runner replaces a function by DROP and CREATE in one transaction; workers calling it
at that moment must see at most a retryable error they recover from, and no job may be
lost or completed twice.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from notify_sql.migrator import migrate
from notify_sql.sources import sql_root
from tests.helpers.reliability import (
    Conn,
    assert_every_job_final_exactly_once,
    enqueue,
    install_completion_log,
    live_jobs,
    recover_and_drain,
    resilient_workers,
)

JOBS = 3000
ROUNDS = 6
CHANGED_FUNCTION = "claim_pending_jobs"
# SQLSTATEs a worker may meet while a deploy swaps a function, and retry: serialization
# failure and deadlock (40001, 40P01), lock not available (55P03).
RETRYABLE = {"40001", "40P01", "55P03"}


def _trees(tmp_path: Path) -> tuple[Path, Path]:
    """Snapshots of the sql tree as installed and with the function changed (copies, so
    files edited meanwhile in the checkout cannot change what is deployed)."""
    original, changed = tmp_path / "original", tmp_path / "changed"
    shutil.copytree(sql_root(), original)
    shutil.copytree(sql_root(), changed)
    path = next((changed / "functions").rglob(f"{CHANGED_FUNCTION}.sql"))
    text = path.read_text()
    changed_text = text.replace("BEGIN\n", "BEGIN\n  -- deployed while workers run\n", 1)
    assert changed_text != text
    path.write_text(changed_text)
    return original, changed


def test_migrate_under_load_loses_nothing(dsn: str, db: Conn, tmp_path: Path) -> None:
    install_completion_log(db)
    enqueued = enqueue(db, JOBS)
    original, changed = _trees(tmp_path)
    applied: list[str] = []
    with resilient_workers(dsn, 4) as workers:
        for round_number in range(ROUNDS):
            time.sleep(0.1)
            steps = migrate(dsn, root=changed if round_number % 2 == 0 else original)
            applied += [step.name for step in steps if step.kind == "function"]
        in_flight = live_jobs(db)
    recover_and_drain(dsn, db)
    assert assert_every_job_final_exactly_once(db, enqueued) == {"completed": JOBS}
    assert applied.count(CHANGED_FUNCTION) == ROUNDS
    assert in_flight > 0, "the workers finished before the deploys: make the queue longer"
    errors = [error for worker in workers for error in worker.errors]
    unexpected = [error for error in errors if error.sqlstate not in RETRYABLE]
    assert not unexpected, f"workers saw non-retryable errors: {unexpected[:3]}"
