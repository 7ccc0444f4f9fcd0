"""The console in a real headless Chromium: figures equal the database's, live updates
without a reload, the trace time line, hostile payloads run nothing, a screenshot."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from notify_sql.wrappers import Deliveries, Queue
from tests.helpers.deliveries import subscriber
from tests.helpers.queue import new_job
from tests.operate.conftest import ARTIFACTS, Console

Conn = psycopg.Connection[Any]
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def figure(driver: Any, metric: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, f'[data-metric="{metric}"]').text)


def database_totals(db: Conn) -> dict[str, int]:
    rows = db.execute(
        "SELECT status, count(*) FROM notify.queue_jobs WHERE status IN ('pending', 'processing') "
        "OR completed_at > now() - interval '24 hours' GROUP BY 1"
    ).fetchall()
    return {status: int(count) for status, count in rows}


SMS_KEY = "twilio:+15550001"


def busy(db: Conn) -> None:
    queue = Queue(db)
    queue.add_queue_jobs([new_job("send_notification", {"n": n}) for n in range(25)])
    briefs_due = [new_job("generate_daily_brief", {"n": n}, max_attempts=1) for n in range(9)]
    queue.add_queue_jobs(briefs_due)
    # A Twilio long code held to one start a second: its SMS jobs queue up behind it.
    queue.set_queue_limit(SMS_KEY, max_per_second=1, burst=1, max_concurrent=2)
    queue.add_queue_jobs([new_job("send_sms", {"n": n}, limit_key=SMS_KEY) for n in range(7)])
    sent = queue.claim_pending_jobs(["send_notification"], batch_size=12)
    queue.complete_queue_jobs([j.id for j in sent[:8]], [j.processing_token for j in sent[:8]])
    briefs = queue.claim_pending_jobs(["generate_daily_brief"], batch_size=4)
    queue.fail_queue_jobs(
        [j.id for j in briefs[:3]], [j.processing_token for j in briefs[:3]], ["timeout"] * 3
    )
    deliveries = Deliveries(db)
    for n in range(6):
        deliveries.emit_notification_event(
            "comment.created",
            {"text": f"comment {n}"},
            target_user_id=subscriber(db, "comment.created"),
        )
    db.execute(
        "UPDATE notify.notification_deliveries SET status = 'delivered', sent_at = now(), "
        "delivered_at = now() WHERE channel = 'email'"
    )
    db.execute(
        "UPDATE notify.notification_deliveries SET status = 'failed', failed_at = now(), "
        "last_error = 'carrier rejected' WHERE channel = 'sms'"
    )


def test_overview_figures_equal_the_database_and_a_screenshot_is_saved(
    db: Conn, console: Console, browser: Any
) -> None:
    busy(db)
    browser.get(console.url + "/")
    totals = database_totals(db)
    for status in ("pending", "processing", "failed", "completed"):
        assert figure(browser, f"queue-{status}") == str(totals.get(status, 0)), status
    cells = browser.find_elements(By.CSS_SELECTOR, '[data-metric="queue-jobs"]')
    shown = {
        (c.get_attribute("data-job-type"), c.get_attribute("data-status")): c.text for c in cells
    }
    expected = {
        (t, s): str(n)
        for t, s, n in db.execute(
            "SELECT job_type, status, count(*) FROM notify.queue_jobs GROUP BY 1, 2"
        ).fetchall()
    }
    assert shown == expected
    email_delivered = browser.find_element(
        By.CSS_SELECTOR, '[data-metric="funnel-24h-delivered"][data-channel="email"]'
    )
    assert email_delivered.text == "6"
    backlog = db.execute(
        "SELECT backlog FROM notify.queue_limit_status() WHERE limit_key = %s", (SMS_KEY,)
    ).fetchone()
    assert backlog is not None and figure(browser, f"limit-backlog:{SMS_KEY}") == str(backlog[0])
    assert len(browser.find_elements(By.CSS_SELECTOR, "#throughput-chart svg rect")) > 0
    ARTIFACTS.mkdir(exist_ok=True)
    time.sleep(0.5)  # let the charts settle before the picture
    assert browser.save_screenshot(str(ARTIFACTS / "console-overview.png"))


def test_an_enqueue_shows_up_without_a_reload(db: Conn, console: Console, browser: Any) -> None:
    Queue(db).add_queue_jobs([new_job("t") for _ in range(3)])
    browser.get(console.url + "/")
    assert figure(browser, "queue-pending") == "3"
    browser.execute_script("window.__same_page = true")
    Queue(db).add_queue_jobs([new_job("t") for _ in range(4)])
    WebDriverWait(browser, 15).until(lambda d: figure(d, "queue-pending") == "7")
    assert browser.execute_script("return window.__same_page") is True


def test_the_trace_page_shows_deliveries_jobs_and_callbacks(
    db: Conn, console: Console, browser: Any
) -> None:
    deliveries = Deliveries(db)
    deliveries.emit_notification_event(
        "comment.created",
        {"text": "hi"},
        target_user_id=subscriber(db, "comment.created"),
        channels=["email", "sms"],
        correlation_id="trace-me-1",
    )
    row = db.execute(
        "SELECT tracking_id FROM notify.notification_deliveries WHERE channel = 'email'"
    ).fetchone()
    assert row is not None
    assert deliveries.record_email_event(row[0], "open")
    browser.get(console.url + "/trace/trace-me-1")
    kinds = [s.get_attribute("data-kind") for s in browser.find_elements(By.CSS_SELECTOR, ".step")]
    assert kinds.count("event") == 1
    assert kinds.count("delivery") == 2
    assert kinds.count("job") == 2
    assert kinds.count("callback") == 1
    assert figure(browser, "trace-callbacks") == "1"


def test_hostile_payloads_run_nothing(db: Conn, console: Console, browser: Any) -> None:
    deliveries = Deliveries(db)
    deliveries.emit_notification_event(
        HOSTILE,
        {"html": HOSTILE},
        target_user_id=subscriber(db, HOSTILE),
        correlation_id=HOSTILE[:60],
    )
    db.execute("UPDATE notify.notification_deliveries SET status = 'failed', failed_at = now(), "
               "last_error = %s", (HOSTILE,))  # fmt: skip
    queue = Queue(db)
    queue.add_queue_job(None, HOSTILE[:100], {"correlation_id": HOSTILE})
    job = queue.claim_pending_jobs([HOSTILE[:100]], batch_size=1)[0]
    queue.fail_queue_job(job.id, HOSTILE, retry=False, processing_token=job.processing_token)
    pages = ["/", "/jobs", "/deliveries", "/jobs?q=" + HOSTILE[:50], "/trace/" + HOSTILE[:60]]
    for path in pages:
        browser.get(console.url + path)
        time.sleep(0.3)
        try:
            alert = browser.switch_to.alert
        except NoAlertPresentException:
            alert = None
        assert alert is None, path
        assert browser.execute_script("return window.__pwned") is None, path
    browser.get(console.url + "/deliveries")
    assert HOSTILE in browser.find_element(By.ID, "deliveries").text  # shown, as text
