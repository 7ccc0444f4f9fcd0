"""The console over HTTP: /metrics parsed by prometheus-client, /healthz through a
database outage, token auth and sessions, CSRF-guarded actions, keyset pagination,
and the refusal to bind another host without a token."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg.conninfo import make_conninfo

from notify_sql.console.app import Sessions
from notify_sql.migrator import migrate
from notify_sql.throwaway import ThrowawayPostgres
from notify_sql.wrappers import Queue
from tests.helpers.queue import new_job
from tests.operate.conftest import Console, ConsoleFactory

Conn = psycopg.Connection[Any]
TOKEN = "s3cret-token-for-tests"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_parse_and_equal_the_database(db: Conn, console: Console) -> None:
    queue = Queue(db)
    queue.add_queue_jobs([new_job("a") for _ in range(5)] + [new_job("b") for _ in range(2)])
    claimed = queue.claim_pending_jobs(["a"], batch_size=2)
    queue.complete_queue_job(claimed[0].id, processing_token=claimed[0].processing_token)
    db.execute(
        "INSERT INTO notify.notification_deliveries (recipient_user_id, channel, status, sent_at) "
        "SELECT gen_random_uuid(), 'sms', 'sent', now() FROM generate_series(1, 4)"
    )
    found = samples(httpx.get(console.url + "/metrics").text)
    expected = {
        (t, s): float(n)
        for t, s, n in db.execute(
            "SELECT job_type, status, count(*) FROM notify.queue_jobs GROUP BY 1, 2"
        ).fetchall()
    }
    jobs = {
        (dict(labels)["job_type"], dict(labels)["status"]): value
        for (name, labels), value in found.items()
        if name == "notify_queue_jobs"
    }
    assert jobs == expected
    assert found[("notify_database_up", ())] == 1
    assert found[("notify_deliveries_24h", (("channel", "sms"), ("status", "sent")))] == 4
    assert ("notify_queue_oldest_pending_age_seconds", (("job_type", "b"),)) in found
    assert found[("notify_queue_stalled_jobs", (("job_type", "a"),))] == 0


@pytest.fixture
def own_server() -> Iterator[ThrowawayPostgres]:
    """A server of its own, so the test can stop it without harming the others."""
    server = ThrowawayPostgres()
    server.start()
    migrate(server.dsn(), "notify")
    yield server
    server.destroy()


def test_healthz_follows_the_database_and_recovers(
    own_server: ThrowawayPostgres, console_factory: ConsoleFactory
) -> None:
    console = console_factory(dsn=own_server.dsn())
    assert httpx.get(console.url + "/healthz").status_code == 200
    own_server.stop()
    assert httpx.get(console.url + "/healthz").status_code == 503
    assert httpx.get(console.url + "/").status_code == 503  # a page, not a crash
    metrics = samples(httpx.get(console.url + "/metrics").text)
    assert metrics[("notify_database_up", ())] == 0
    own_server.start()
    assert httpx.get(console.url + "/healthz").status_code == 200
    assert httpx.get(console.url + "/").status_code == 200


def test_a_token_is_required_then_a_session_cookie_suffices(
    console_factory: ConsoleFactory,
) -> None:
    console = console_factory(token=TOKEN)
    for path in ("/", "/metrics", "/healthz", "/jobs", "/events", "/static/console.css"):
        assert httpx.get(console.url + path).status_code == 401, path
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.get(console.url + "/", headers=wrong).status_code == 401
    with httpx.Client(base_url=console.url) as client:
        first = client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert first.status_code == 200
        assert client.get("/jobs").status_code == 200  # the session cookie alone
    with httpx.Client(base_url=console.url) as browser_like:
        landing = browser_like.get(f"/?token={TOKEN}")
        assert landing.status_code == 303 and landing.headers["location"] == "/"
        assert browser_like.get("/").status_code == 200
    forged = httpx.get(console.url + "/", cookies={"notify_console_session": "made-up"})
    assert forged.status_code == 401


def test_sessions_expire_when_idle_and_are_dropped(console_factory: ConsoleFactory) -> None:
    console = console_factory(token=TOKEN, session_idle_seconds=3.0)
    with httpx.Client(base_url=console.url) as browser_like:
        assert browser_like.get(f"/?token={TOKEN}").status_code == 303
        for _ in range(3):  # each use restarts the idle time (4.5 s in all, > 3 s)
            time.sleep(1.5)
            assert browser_like.get("/healthz").status_code == 200
        time.sleep(3.5)
        assert browser_like.get("/healthz").status_code == 401
    assert len(console.app.state.sessions) == 0


def test_expired_sessions_leave_memory_and_scrapers_do_not_pile_up() -> None:
    now = [0.0]
    sessions = Sessions(idle_seconds=100, clock=lambda: now[0])
    kept = sessions.new()
    for _ in range(50):  # a scraper sending the token and no cookie: a session each time
        sessions.new()
        now[0] += 10
        assert sessions.use(kept)
    assert len(sessions) == 10  # the kept one and the nine made less than 100 s ago
    now[0] += 100
    assert not sessions.use(kept) and len(sessions) == 0
    assert not sessions.use(None)


def _csrf(client: httpx.Client) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/jobs").text)
    assert match is not None
    return match.group(1)


def _status(db: Conn, job_id: Any) -> str:
    row = db.execute("SELECT status FROM notify.queue_jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return str(row[0])


def test_actions_are_refused_without_allow_actions(
    db: Conn, console_factory: ConsoleFactory
) -> None:
    job_id = Queue(db).add_queue_job(None, "t", {})
    console = console_factory()
    with httpx.Client(base_url=console.url) as client:
        client.get("/")
        refused = client.post(f"/jobs/{job_id}/cancel", data={"csrf": "x"})
    assert refused.status_code == 403
    assert _status(db, job_id) == "pending"


def test_actions_need_the_csrf_token_and_then_work(
    db: Conn, console_factory: ConsoleFactory
) -> None:
    queue = Queue(db)
    pending = queue.add_queue_job(None, "t", {})
    queue.add_queue_job(None, "f", {"k": 1})
    failed = queue.claim_pending_jobs(["f"], batch_size=1)[0]
    queue.fail_queue_job(failed.id, "boom", retry=False, processing_token=failed.processing_token)
    console = console_factory(allow_actions=True)
    with httpx.Client(base_url=console.url) as client:
        csrf = _csrf(client)
        assert client.post(f"/jobs/{pending}/cancel").status_code == 403
        assert client.post(f"/jobs/{pending}/cancel", data={"csrf": "0" * 64}).status_code == 403
        assert _status(db, pending) == "pending"
        assert client.post(f"/jobs/{pending}/cancel", data={"csrf": csrf}).status_code == 303
        assert client.post(f"/jobs/{failed.id}/retry", data={"csrf": csrf}).status_code == 303
    with httpx.Client(base_url=console.url) as stranger:  # another browser: its own token
        stranger.get("/")
        assert stranger.post(f"/jobs/{failed.id}/retry", data={"csrf": csrf}).status_code == 403
    assert _status(db, pending) == "cancelled"
    # The retry puts the failed job itself back (retry_queue_job): same id, pending,
    # due now, one more run allowed; no copy is made.
    again = db.execute(
        "SELECT status, attempts, max_attempts, scheduled_for <= now(), "
        "(SELECT count(*) FROM notify.queue_jobs WHERE job_type = 'f') "
        "FROM notify.queue_jobs WHERE id = %s",
        (failed.id,),
    ).fetchone()
    assert again == ("pending", 1, 3, True, 1)
    with httpx.Client(base_url=console.url) as client:  # not failed any more: nothing to do
        outcome = client.post(f"/jobs/{failed.id}/retry", data={"csrf": _csrf(client)})
        assert outcome.status_code == 303 and "nothing+to+do" in outcome.headers["location"]


def test_keyset_pages_cover_every_row_once(db: Conn, console: Console) -> None:
    db.execute(
        "INSERT INTO notify.notification_deliveries (recipient_user_id, channel, created_at) "
        "SELECT gen_random_uuid(), 'email', now() - (n % 7) * interval '1 minute' "
        "FROM generate_series(1, 130) AS n"
    )
    Queue(db).add_queue_jobs([new_job("t") for _ in range(120)])
    for path, marker, total in (
        ("/deliveries", "data-delivery-id", 130),
        ("/jobs", "data-job-id", 120),
    ):
        seen: list[str] = []
        url: str | None = path + "?channel=email" if path == "/deliveries" else path
        while url:
            html = httpx.get(console.url + url).text
            seen += re.findall(marker + r'="([0-9a-f-]+)"', html)
            found = re.search(r'href="([^"]+)" rel="next"', html)
            url = found.group(1).replace("&amp;", "&") if found else None
        assert len(seen) == total and len(set(seen)) == total, path


def test_search_finds_a_job_by_correlation_id(db: Conn, console: Console) -> None:
    wanted = Queue(db).add_queue_job(None, "t", {"correlation_id": "corr-42"})
    Queue(db).add_queue_job(None, "t", {"correlation_id": "other"})
    html = httpx.get(console.url + "/jobs", params={"q": "corr-42"}).text
    assert re.findall(r'data-job-id="([0-9a-f-]+)"', html) == [str(wanted)]
    user = uuid4()
    bad = httpx.get(console.url + "/jobs", params={"user": "not-a-uuid", "q": str(user)})
    assert bad.status_code == 400


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1"])
def test_another_host_without_a_token_is_refused(dsn: str, host: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "notify_sql", "serve", "--host", host, "--dsn", dsn],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == f"notify-sql: error: refusing to serve on {host} without --token\n"


@pytest.fixture
def monitor_dsn(dsn: str, db: Conn) -> Iterator[str]:
    """A login role whose only right is notify_sql_monitor (0009)."""
    role = f"console_{uuid4().hex[:12]}"
    db.execute(f"CREATE ROLE {role} LOGIN IN ROLE notify_sql_monitor")
    yield make_conninfo(dsn, user=role)
    db.execute(f"DROP OWNED BY {role}")
    db.execute(f"DROP ROLE {role}")


def test_the_console_reads_with_the_monitor_role_and_cannot_write(
    db: Conn, monitor_dsn: str, console_factory: ConsoleFactory
) -> None:
    queue = Queue(db)
    pending = queue.add_queue_job(None, "t", {"correlation_id": "c-1"})
    db.execute(
        "INSERT INTO notify.notification_deliveries (recipient_user_id, channel, correlation_id) "
        "VALUES (gen_random_uuid(), 'sms', 'c-1')"
    )
    console = console_factory(dsn=monitor_dsn, allow_actions=True)
    with httpx.Client(base_url=console.url) as client:
        for path in ("/", "/metrics", "/jobs", "/deliveries?q=c-1", "/trace/c-1", "/healthz"):
            assert client.get(path).status_code == 200, path
        assert "c-1" in client.get("/trace/c-1").text
        refused = client.post(f"/jobs/{pending}/cancel", data={"csrf": _csrf(client)})
        assert refused.status_code == 403 and "permission denied" in refused.text
    assert _status(db, pending) == "pending"
    with psycopg.connect(monitor_dsn, autocommit=True) as monitor:
        for statement in (
            "UPDATE notify.queue_jobs SET status = 'cancelled'",
            "SELECT notify.claim_pending_jobs(ARRAY['t'], 1)",
            "SELECT notify.run_queue_upkeep()",
            "SELECT * FROM notify.notification_preferences",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                monitor.execute(statement)
