"""The operator console: server-rendered pages, live updates, /metrics, /healthz.

Everything it shows comes from :mod:`notify_sql.monitor` (one SQL function per figure).
Pages are Jinja2 templates with autoescape on: payloads, error messages, event types
and ids are hostile input and only ever reach the page escaped (and the JavaScript
only writes ``textContent``; a Content-Security-Policy forbids inline scripts).

Live updates: one background task per process refreshes the overview snapshot every
``LIVE_INTERVAL`` seconds, and only while at least one browser listens on ``/events``
(server-sent events); every browser gets the same snapshot, so the database sees one
refresh per interval whatever the number of viewers. The page falls back to polling
``/api/overview`` when EventSource is unavailable.

Security: with a token, every request needs ``Authorization: Bearer TOKEN`` or the
session cookie the console sets once the token was given (header or ``?token=``);
others get 401. Sessions live in memory and expire after 12 h without a request
(:class:`Sessions`). Actions (retry a failed job, cancel a job) exist only with
``allow_actions``: POST with a CSRF token bound to a per-browser cookie.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode
from uuid import UUID

import anyio
import psycopg
from jinja2 import Environment, FileSystemLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from notify_sql import monitor
from notify_sql.console.metrics import QueueCollector

HERE = Path(__file__).parent
LIVE_INTERVAL = 1.0
SESSION_COOKIE = "notify_console_session"
CSRF_COOKIE = "notify_console_csrf"
Conn = psycopg.Connection[Any]
T = TypeVar("T")


class Database:
    """One connection, shared under a lock (an operator console has few users), opened
    on demand and dropped on any connection error so the next request reconnects:
    the console outlives a database restart."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema
        self._conn: Conn | None = None
        self._lock = threading.Lock()

    def run(self, work: Callable[[Conn], T]) -> T:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=3)
                return work(self._conn)
            except psycopg.OperationalError:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                raise

    async def arun(self, work: Callable[[Conn], T]) -> T:
        return await anyio.to_thread.run_sync(self.run, work)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None


SESSION_IDLE_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000


@dataclass
class Settings:
    dsn: str
    schema: str = "notify"
    token: str | None = None
    allow_actions: bool = False
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    session_idle_seconds: float = SESSION_IDLE_SECONDS


class Sessions:
    """Console sessions (set once the token was given), kept in memory and dropped after
    ``idle_seconds`` without a request (12 h by default: a working day, and a stolen
    cookie dies with the day). Each use moves a session to the end of an insertion-
    ordered dict, so the expired ones are always at its front and every call drops them
    in O(expired). A client that sends the token on every request and no cookie (a
    Prometheus scrape) creates one session per request: those expire like any other,
    and at most ``MAX_SESSIONS`` are kept (the least recently used goes first)."""

    def __init__(self, idle_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self.clock = clock
        self._last_used: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def _drop_expired(self, now: float) -> None:
        while self._last_used:
            oldest, used = next(iter(self._last_used.items()))
            if now - used < self.idle_seconds and len(self._last_used) <= MAX_SESSIONS:
                return
            del self._last_used[oldest]

    def new(self) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            self._last_used[session] = self.clock()
            self._drop_expired(self.clock())
        return session

    def use(self, session: str | None) -> bool:
        """True, and the idle time restarts, when ``session`` is live."""
        with self._lock:
            now = self.clock()
            self._drop_expired(now)
            if session is None or session not in self._last_used:
                return False
            self._last_used[session] = now
            self._last_used.move_to_end(session)
            return True

    def __len__(self) -> int:
        return len(self._last_used)


def overview_snapshot(conn: Conn, schema: str) -> dict[str, Any]:
    health = monitor.queue_health(conn, schema)
    return {
        "totals": monitor.totals(health),
        "oldest_pending_age": monitor.oldest_pending_age(health),
        "queue": health,
        "throughput": monitor.throughput(conn, schema),
    }


class LiveHub:
    """Refreshes the overview snapshot while anyone listens and fans it out."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.listeners: set[asyncio.Queue[str]] = set()
        self.refreshes = 0
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        last = ""
        while self.listeners:
            try:
                snapshot = await self.db.arun(lambda c: overview_snapshot(c, self.db.schema))
                text = json.dumps(snapshot)
            except psycopg.Error:
                text = json.dumps({"error": "database unavailable"})
            self.refreshes += 1
            if text != last:
                last = text
                for listener in list(self.listeners):
                    if listener.qsize() < 5:
                        listener.put_nowait(text)
                    else:  # nobody reads it any more (a vanished browser): stop serving it
                        self.listeners.discard(listener)
            await asyncio.sleep(LIVE_INTERVAL)
        self._task = None

    def subscribe(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.listeners.add(queue)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self.listeners.discard(queue)


PAGE_SIZE = 50


def _filters(params: Any, jobs: bool) -> dict[str, Any]:
    """The list filters from the query string; ValueError names a bad one."""

    def text(name: str) -> str | None:
        value = str(params.get(name, "")).strip()
        return value or None

    def parsed(name: str, parse: Callable[[str], Any]) -> Any:
        value = text(name)
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError:
            raise ValueError(f"{name}: not a valid value: {value!r}") from None

    filters: dict[str, Any] = {
        "status": text("status"),
        "user_id": parsed("user", UUID),
        "from": parsed("from", datetime.fromisoformat),
        "to": parsed("to", datetime.fromisoformat),
        "q": text("q"),
    }
    if jobs:
        filters["job_type"] = text("type")
        filters["before_id"] = parsed("before", UUID)
    else:
        filters["channel"] = text("channel")
        cursor = text("before")
        if cursor is not None:
            created_at, _, delivery_id = cursor.partition("~")
            filters["before_created_at"] = parsed(
                "before", lambda _: datetime.fromisoformat(created_at)
            )
            filters["before_id"] = parsed("before", lambda _: UUID(delivery_id))
    return filters


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["age"] = monitor.age
    env.filters["when"] = lambda value: "" if value is None else str(value)[:19].replace("T", " ")
    env.filters["pretty"] = lambda value: json.dumps(value, indent=1, sort_keys=True)
    return env


def _csrf(settings: Settings, request: Request) -> str:
    browser = request.cookies.get(CSRF_COOKIE) or request.state.new_csrf_cookie
    return hmac.new(settings.secret, browser.encode(), hashlib.sha256).hexdigest()


def create_app(settings: Settings) -> Starlette:
    db = Database(settings.dsn, settings.schema)
    hub = LiveHub(db)
    env = _templates()
    sessions = Sessions(settings.session_idle_seconds)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(db.run, settings.schema))

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(
            request=request,
            csrf=_csrf(settings, request),
            allow_actions=settings.allow_actions,
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def unavailable(request: Request) -> HTMLResponse:
        return page(request, "unavailable.html", status=503)

    async def overview(request: Request) -> Response:
        schema = settings.schema

        def read(conn: Conn) -> dict[str, Any]:
            return {
                "live": overview_snapshot(conn, schema),
                "funnel_24h": monitor.funnel_in_slices(conn, schema, "24 hours"),
                "funnel_7d": monitor.funnel_in_slices(conn, schema, "7 days"),
                "failures": monitor.recent_failures(conn, schema),
                "limits": monitor.limits(conn, schema),
            }

        try:
            data = await db.arun(read)
        except psycopg.OperationalError:
            return unavailable(request)
        return page(request, "overview.html", **data)

    async def api_overview(request: Request) -> Response:
        try:
            return JSONResponse(await db.arun(lambda c: overview_snapshot(c, settings.schema)))
        except psycopg.OperationalError:
            return JSONResponse({"error": "database unavailable"}, status_code=503)

    async def events(request: Request) -> Response:
        queue = hub.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                while True:
                    try:
                        text = await asyncio.wait_for(queue.get(), timeout=15)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield f"data: {text}\n\n"
            finally:
                hub.unsubscribe(queue)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def listing(request: Request) -> Response:
        jobs = request.url.path == "/jobs"
        params = request.query_params
        try:
            filters = _filters(params, jobs)
        except ValueError as error:
            return page(request, "message.html", status=400, message=str(error))
        lister = monitor.list_jobs if jobs else monitor.list_deliveries
        try:
            rows = await db.arun(lambda c: lister(c, settings.schema, **filters, limit=PAGE_SIZE))
        except psycopg.OperationalError:
            return unavailable(request)
        except psycopg.Error as error:
            return page(request, "message.html", status=400, message=str(error))
        next_url = None
        if len(rows) == PAGE_SIZE:
            last = rows[-1]
            cursor = last["id"] if jobs else f"{last['created_at']}~{last['id']}"
            query = {k: v for k, v in params.items() if k != "before"}
            next_url = request.url.path + "?" + urlencode({**query, "before": cursor})
        return page(
            request,
            "jobs.html" if jobs else "deliveries.html",
            rows=rows,
            params=params,
            next_url=next_url,
            first_url=request.url.path
            + "?"
            + urlencode({k: v for k, v in params.items() if k != "before"}),
        )

    async def trace(request: Request) -> Response:
        correlation_id = request.path_params["correlation_id"]
        try:
            rows = await db.arun(lambda c: monitor.trace(c, settings.schema, correlation_id))
        except psycopg.OperationalError:
            return unavailable(request)
        except psycopg.Error as error:
            return page(request, "message.html", status=400, message=str(error))
        return page(request, "trace.html", correlation_id=correlation_id, rows=rows)

    async def trace_search(request: Request) -> Response:
        wanted = request.query_params.get("correlation_id", "").strip()
        if not wanted:
            return RedirectResponse("/", status_code=303)
        return RedirectResponse(request.url_for("trace", correlation_id=wanted), 303)

    async def metrics(request: Request) -> Response:
        body = await anyio.to_thread.run_sync(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        try:
            await db.arun(lambda c: c.execute("SELECT 1").fetchone())
        except psycopg.Error:
            return PlainTextResponse("database unavailable\n", status_code=503)
        return PlainTextResponse("ok\n")

    async def refusal(request: Request) -> Response | None:
        """Why an action request is refused, or None when it may run."""
        if not settings.allow_actions:
            return PlainTextResponse(
                "actions are disabled (start the console with --allow-actions)\n", 403
            )
        # The forms are url-encoded; parsed here (no multipart dependency).
        form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
        given = (form.get("csrf") or [""])[0]
        expected = _csrf(settings, request)
        if not request.cookies.get(CSRF_COOKIE) or not hmac.compare_digest(given, expected):
            return PlainTextResponse("missing or wrong CSRF token\n", status_code=403)
        if request.path_params["verb"] not in ("retry", "cancel"):
            return PlainTextResponse("no such action\n", status_code=404)
        return None

    async def action(request: Request) -> Response:
        refused = await refusal(request)
        if refused is not None:
            return refused
        try:
            job_id = UUID(request.path_params["job_id"])
        except ValueError:
            return PlainTextResponse("no such job\n", status_code=404)
        verb = request.path_params["verb"]
        work = monitor.retry_job if verb == "retry" else monitor.cancel_job
        try:
            done = await db.arun(lambda c: work(c, settings.schema, job_id))
        except psycopg.OperationalError:
            return unavailable(request)
        except psycopg.Error as error:  # e.g. a read-only role: actions need service_role
            return page(request, "message.html", status=403, message=str(error))
        outcome = "done" if done else "nothing to do"
        back = str(request.url_for("overview")) + "?" + urlencode({verb: outcome})
        return RedirectResponse(back, status_code=303)

    async def guard(request: Request, call_next: RequestResponseEndpoint) -> Response:
        request.state.new_csrf_cookie = secrets.token_urlsafe(24)
        new_session = None
        if settings.token is not None:
            session = request.cookies.get(SESSION_COOKIE)
            given = request.headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else None
            token = token or request.query_params.get("token")
            if token is not None and hmac.compare_digest(token.encode(), settings.token.encode()):
                if not sessions.use(session):
                    new_session = sessions.new()
            elif not sessions.use(session):
                return PlainTextResponse(
                    "unauthorized: send Authorization: Bearer TOKEN\n",
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        if "token" in request.query_params and request.method == "GET":
            # Keep the token out of the address bar and the history once it was used.
            query = {k: v for k, v in request.query_params.items() if k != "token"}
            target = request.url.path + ("?" + urlencode(query) if query else "")
            response: Response = RedirectResponse(target, status_code=303)
        else:
            response = await call_next(request)
        if new_session is not None:
            response.set_cookie(SESSION_COOKIE, new_session, httponly=True, samesite="strict")
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(
                CSRF_COOKIE, request.state.new_csrf_cookie, httponly=True, samesite="strict"
            )
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        db.close()

    routes = [
        Route("/", overview, name="overview"),
        Route("/api/overview", api_overview),
        Route("/events", events),
        Route("/trace", trace_search),
        Route("/trace/{correlation_id:path}", trace, name="trace"),
        Route("/jobs", listing),
        Route("/deliveries", listing),
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Route("/jobs/{job_id}/{verb:str}", action, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)],
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.sessions = sessions
    app.state.db = db
    return app
