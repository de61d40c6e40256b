"""The console's web application (Starlette, Jinja2 templates): pages for the overview, a
listener (its streams, consumers and pending entries) and its dead letters, and the two
steps of every write — a confirmation page that names exactly what will change, then the
change itself, of exactly those entries.

Who may read and write is decided in security.py; what is shown is read in overview.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from loguru import logger
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..client import build_client, close_client
from ..config.models import AppSettings
from ..listener.dead_letters import (
    dead_letter_meta,
    matches,
    original_pairs,
    replay,
    select_dead_letters,
)
from ..wire.decoding import to_wire
from ..wire.ids import format_id, id_key, is_id, parse_id, waited
from ..wire.operator import RedisOperator
from ..wire.records import StreamEntry
from ..wire.redis_errors import describe_unavailable, from_redis, is_transient
from .charts import Chart, chart
from .history import SERIES, History, Sample
from .overview import ListenerOverview, listener_overview, overview, pending_rows
from .prometheus import queries, query_range
from .security import (
    COOKIE,
    Caller,
    caller,
    cross_site,
    csrf_value,
    host_allowed,
    may_read,
    signed_in,
    write_refusal,
)
from .settings import ConsoleSettings

HERE = Path(__file__).resolve().parent
"""Where its templates and static files are (resolved: an editable install links each file)."""
BODY_LIMIT = 1 << 20
"""A form larger than this is refused (413): a selection of dead letters is far smaller."""
TITLES = {"lag": "Lag", "pending": "Pending", "throughput": "Deliveries per second"}
SESSIONS = 1000
"""Sessions kept at most (the oldest ends first): signing in is for a few operators."""
CONFIRM_SHOWN = 200
"""Dead letters a confirmation lists by name (it counts, and acts on, all it selects)."""
FIELD_SHOWN = 300
"""Characters of a field's value shown in the dead-letter table (the rest: its length)."""
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def printable(text: str) -> str:
    """Bytes that are not UTF-8, and control characters, as ``\\xNN``: shown as stored,
    never a crash, never a NUL written into the page."""
    shown = to_wire(text).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", shown)


def clipped(text: str) -> str:
    """A long value's start and its size (the whole of it: ``streamboot dlq show``)."""
    shown = printable(text)
    if len(shown) <= FIELD_SHOWN:
        return shown
    return f"{shown[:FIELD_SHOWN]}… ({len(to_wire(text)):,} bytes in all)"


@dataclass(frozen=True, slots=True)
class Pick:
    """One dead letter: its dead-letter stream and id (a form's ``pick`` is "<id> <key>")."""

    key: str
    id: str

    @property
    def value(self) -> str:
        return f"{self.id} {self.key}"

    @classmethod
    def parse(cls, text: str) -> Pick | None:
        """The id in its full form: ``5`` and ``5-00`` are the one entry ``5-0``."""
        entry_id, _, key = text.partition(" ")
        return cls(key, format_id(parse_id(entry_id))) if is_id(entry_id) and key else None


@dataclass(frozen=True, slots=True)
class Filter:
    """The dead-letter browser's filter: a reason and ``field=value`` conditions."""

    reason: str | None
    where: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, reason: str, where: str) -> Filter:
        conditions = []
        for line in where.splitlines():
            name, sep, value = line.strip().partition("=")
            if line.strip():
                if not sep or not name:
                    raise ValueError(f"{line.strip()!r}: expected field=value")
                conditions.append((name, value))
        return cls(reason.strip() or None, tuple(conditions))

    @property
    def text(self) -> str:
        return "\n".join(f"{k}={v}" for k, v in self.where)

    def accepts(self, entry: StreamEntry) -> bool:
        return matches(entry, self.reason, self.where)


class Console:
    """One console: the application's settings, a Redis connection, the charts' samples."""

    def __init__(self, app_settings: AppSettings, settings: ConsoleSettings,
                 token: str) -> None:
        self.app_settings = app_settings
        self.settings = settings
        self.token = token
        seconds = settings.history.total_seconds()
        self.history = History(int(seconds / settings.sample_every.total_seconds()) + 1)
        self.operator: RedisOperator | None = None
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["printable"] = printable
        self.templates.env.filters["clipped"] = clipped
        self.templates.env.filters["number"] = _number
        self.templates.env.filters["seconds"] = _seconds
        self.templates.env.globals["quote"] = quote
        self._sampler: asyncio.Task[None] | None = None
        self._said_sampling_failed = False
        self.sessions: OrderedDict[str, float] = OrderedDict()
        """Session id → when it began; in memory only (a restart signs everybody out)."""

    # -- life --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        client = build_client(self.app_settings.redis)
        self.operator = RedisOperator(client)
        if self.settings.prometheus_url is None:
            self._sampler = asyncio.create_task(self._sample_forever())
        try:
            yield
        finally:
            if self._sampler is not None:
                self._sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._sampler
            await close_client(client)

    async def _sample_forever(self) -> None:
        every = self.settings.sample_every.total_seconds()
        while True:
            try:
                await self.sample()
                if self._said_sampling_failed:
                    logger.info("console: sampling works again")
                self._said_sampling_failed = False
            except Exception as exc:  # Redis away: the charts get a gap, said once
                if not self._said_sampling_failed:
                    logger.warning("console: cannot sample the streams ({}: {}); the "
                                   "charts have a gap until it can", type(exc).__name__, exc)
                self._said_sampling_failed = True
            await asyncio.sleep(every)

    async def sample(self) -> None:
        """One sample of every listener's lag, pending and entries-read."""
        found = await overview(self._operator, self.app_settings, datetime.now(UTC))
        now = time.time()
        for listener in found:
            self.history.add(listener.name, Sample(now, listener.lag, listener.pending,
                                                   listener.entries_read))

    @property
    def _operator(self) -> RedisOperator:
        assert self.operator is not None, "the console's lifespan has not started"
        return self.operator

    # -- pages -------------------------------------------------------------------------

    def _page(self, request: Request, name: str, status: int = 200,
              **context: Any) -> Response:
        who = caller(request.headers, request.cookies)
        session = who.cookie if who.cookie in self.sessions else None
        return self.templates.TemplateResponse(request, name, {
            "app": self.app_settings.application.name, "now": time.time(),
            "signed_in": signed_in(self.token, self.sessions, who),
            "csrf": csrf_value(self.token, session) if session else "", **context},
            status_code=status)

    async def overview_page(self, request: Request) -> Response:
        found = await overview(self._operator, self.app_settings, datetime.now(UTC))
        charts = {listener.name: await self._charts(listener) for listener in found}
        return self._page(request, "overview.html", listeners=found, charts=charts,
                          source=self._chart_source())

    async def overview_json(self, request: Request) -> Response:
        """The overview's numbers for scripts (and the tests that compare them to XINFO)."""
        found = await overview(self._operator, self.app_settings, datetime.now(UTC))
        now = time.time()
        return JSONResponse([{
            "listener": ls.name, "stream": ls.settings.stream, "group": ls.settings.group,
            "lag": ls.lag, "pending": ls.pending, "length": ls.length,
            "dead_letters": ls.dead_letters, "members": ls.members,
            "streams": [{"key": r.key, "partition": r.partition, "exists": r.exists,
                         "length": r.length, "lag": r.lag, "pending": r.pending,
                         "group_exists": r.group is not None,
                         "oldest_pending_age_s": r.oldest_pending_age(now),
                         "owner": r.lease.owner if r.lease else None,
                         "consumers": [{"name": c.name, "pending": c.pending,
                                        "idle_ms": c.idle_ms} for c in r.consumers],
                         "dead_letter_stream": r.dead_letter_stream,
                         "dead_letters": r.dead_letters} for r in ls.rows]}
            for ls in found])

    async def listener_page(self, request: Request) -> Response:
        found = await self._listener(request)
        if isinstance(found, Response):
            return found
        rows = await pending_rows(self._operator, found)
        return self._page(request, "listener.html", listener=found, pending=rows,
                          charts=await self._charts(found), source=self._chart_source())

    async def dead_letters_page(self, request: Request) -> Response:
        found = await self._listener(request)
        if isinstance(found, Response):
            return found
        params = request.query_params
        try:
            shown = Filter.parse(params.get("reason", ""), params.get("where", ""))
        except ValueError as exc:
            return self._page(request, "message.html", 400, title="Bad filter",
                              message=str(exc), back=request.url.path)
        # Filtered: every dead letter is looked at (the first `limit` matches of each
        # stream listed, all counted); else the first `limit` of each, XLEN counted.
        limit = self.settings.dead_letters_shown
        letters: list[tuple[str, StreamEntry]] = []
        total = 0
        for key in found.dead_letter_streams:
            if shown.reason or shown.where:
                matched = await select_dead_letters(self._operator, key, shown.accepts)
                total += len(matched)
                letters += [(key, entry) for entry in matched[:limit]]
            else:
                letters += [(key, entry) for entry in await self._dead_letters(key)]
                total += await self._operator.xlen(key)
        reasons = sorted({dead_letter_meta(e).get("dlq_reason", "") for _, e in letters})
        return self._page(request, "dead_letters.html", listener=found, filter=shown,
                          letters=[_letter(key, e) for key, e in letters], reasons=reasons,
                          limit=limit, total=total)

    async def _dead_letters(self, key: str) -> list[StreamEntry]:
        return await self._operator.xrange_exact(key, count=self.settings.dead_letters_shown)

    async def confirm(self, request: Request) -> Response:
        """Step one of a write: what would change, named entry by entry; nothing changes.
        A filter is applied to every dead letter (not only those the page showed), up to
        the newest of each stream now: the confirmation carries those bounds, so that the
        change never reaches one that arrives in between."""
        found, form = await self._write_request(request)
        if isinstance(found, Response):
            return found
        intent = self._intent(request, found, form)
        if isinstance(intent, Response):
            return intent
        action, wanted = intent
        if wanted is not None:
            picked = [(key, e) for key in found.dead_letter_streams
                      for e in await select_dead_letters(self._operator, key, wanted.accepts)]
        else:
            picked = await self._picked(found, form)
        if not picked:
            return self._refuse(request, found, "no dead letter is selected or matches: "
                                f"nothing to {action}", "Nothing selected")
        upto: dict[str, str] = {}
        for key, entry in picked:
            upto[key] = entry.id  # oldest first: the last one is the newest
        return self._page(request, "confirm.html", listener=found, action=action,
                          total=len(picked), filter=wanted,
                          upto=[Pick(key, last).value for key, last in upto.items()],
                          letters=[_letter(key, e) for key, e in picked[:CONFIRM_SHOWN]])

    async def apply(self, request: Request) -> Response:
        """Step two: replay or delete exactly the dead letters the confirmation named (a
        filter's: those it matches up to the bounds the confirmation carried)."""
        found, form = await self._write_request(request)
        if isinstance(found, Response):
            return found
        intent = self._intent(request, found, form)
        if isinstance(intent, Response):
            return intent
        action, wanted = intent
        if wanted is not None:
            allowed = set(found.dead_letter_streams)
            picked = []
            for bound in (p for t in form.get("upto", []) if (p := Pick.parse(t))):
                if bound.key not in allowed:
                    continue
                picked += [(bound.key, e) for e in await select_dead_letters(
                    self._operator, bound.key, _within(wanted, bound.id))]
        else:
            picked = await self._picked(found, form)
        by_key: dict[str, list[str]] = {}
        for key, entry in picked:
            by_key.setdefault(key, []).append(entry.id)
        lines: list[str] = []
        log = logger.bind(listener=found.name)
        if action == "replay":
            for key, ids in by_key.items():
                for done in await replay(self._operator, key, ids):
                    lines.append(f"{done.dead_letter_id} → {done.stream} {done.new_id}")
            log.info("console: replayed {} dead letters", len(lines))
            title = f"Replayed {len(lines)} dead letter{'s' if len(lines) != 1 else ''}"
        else:
            deleted = 0
            for key, ids in by_key.items():
                deleted += await self._operator.xdel(key, ids)
                lines += [f"{key} {i}" for i in ids]
            log.info("console: deleted {} dead letters", deleted)
            title = f"Deleted {deleted} dead letter{'s' if deleted != 1 else ''}"
        return self._page(request, "message.html", title=title, lines=lines,
                          back=_letters_path(found.name))

    def _intent(self, request: Request, found: ListenerOverview, form: dict[str, list[str]],
                ) -> tuple[str, Filter | None] | Response:
        """What a write asks for: its action, and its filter when its scope is one (the
        page's buttons say so in the query, the confirmation in its form); or why not."""
        action = form.get("action", [""])[0]
        if action not in ("replay", "purge"):
            return self._refuse(request, found, f"unknown action {action!r}: replay or purge")
        scope = request.query_params.get("scope") or form.get("scope", ["selected"])[0]
        if scope != "filter":
            return action, None
        try:
            return action, Filter.parse(form.get("reason", [""])[0],
                                        form.get("where", [""])[0])
        except ValueError as exc:
            return self._refuse(request, found, str(exc), "Bad filter")

    async def _picked(self, found: ListenerOverview, form: dict[str, list[str]],
                      ) -> list[tuple[str, StreamEntry]]:
        """The dead letters a form's ``pick`` fields name that exist now, each once, of
        this listener's dead-letter streams only."""
        allowed = set(found.dead_letter_streams)
        picks = dict.fromkeys(p for t in form.get("pick", []) if (p := Pick.parse(t))
                              and p.key in allowed)
        return [(pick.key, e) for pick in picks
                for e in await self._operator.xrange_exact(pick.key, pick.id, pick.id, 1)]

    def _refuse(self, request: Request, found: ListenerOverview, message: str,
                title: str = "Refused") -> Response:
        return self._page(request, "message.html", 400, title=title, message=message,
                          back=_letters_path(found.name))

    async def _write_request(self, request: Request,
                             ) -> tuple[ListenerOverview | Response, dict[str, list[str]]]:
        form = await _form(request)
        if isinstance(form, Response):
            return form, {}
        who = caller(request.headers, request.cookies)
        refusal = write_refusal(self.token, self.sessions, who, form.get("csrf", [None])[0])
        if refusal is not None:
            logger.warning("console: refused {} {}: {}", request.method, request.url.path,
                           refusal)
            return self._page(request, "message.html", 403, title="Refused",
                              message=refusal, back="/login"), {}
        return await self._listener(request), form

    async def _listener(self, request: Request) -> ListenerOverview | Response:
        name = request.path_params["name"]
        listener = self.app_settings.listeners.get(name)
        if listener is None:
            known = ", ".join(self.app_settings.listeners) or "none"
            return self._page(request, "message.html", 404, title="No such listener",
                              message=f"no listener {name!r} in the application file "
                              f"(listeners: {known})", back="/")
        return await listener_overview(self._operator, name, listener, datetime.now(UTC))

    async def _charts(self, listener: ListenerOverview) -> list[Chart]:
        end = time.time()
        start = end - self.settings.history.total_seconds()
        url = self.settings.prometheus_url
        if url is None:
            series = self.history.series(listener.name)
        else:
            step = max(1.0, (end - start) / 240)
            exprs = queries(listener.name, listener.settings, [r.key for r in listener.rows],
                            step)
            series = {}
            for name, expr in exprs.items():
                try:
                    series[name] = await query_range(url, expr, start, end, step)
                except Exception as exc:
                    logger.warning("console: prometheus at {} did not answer {}: {}", url,
                                   name, exc)
                    series[name] = []
        return [chart(TITLES[name], series.get(name, []), start, end) for name in SERIES]

    def _chart_source(self) -> str:
        every = self.settings.sample_every.total_seconds()
        url = self.settings.prometheus_url
        return (f"from Prometheus at {url}" if url else
                f"sampled by this console every {every:g}s since it started")

    # -- signing in --------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        return self._page(request, "login.html", next=_local(request.query_params.get(
            "next", "/")), wrong=False)

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        if isinstance(form, Response):
            return form
        if cross_site(caller(request.headers, request.cookies)):
            return PlainTextResponse("refused a sign-in from another site\n", status_code=403)
        given = form.get("token", [""])[0]
        target = _local(form.get("next", ["/"])[0])
        if not signed_in(self.token, (), Caller(None, given, None, None)):
            logger.warning("console: a sign-in with a wrong token")
            return self._page(request, "login.html", 403, next=target, wrong=True)
        session = secrets.token_urlsafe(32)
        self.sessions[session] = time.time()
        while len(self.sessions) > SESSIONS:
            self.sessions.popitem(last=False)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict", path="/")
        return response

    async def logout(self, request: Request) -> Response:
        """Ends the session here, not only in this browser: its cookie is worthless after."""
        who = caller(request.headers, request.cookies)
        if cross_site(who):
            return PlainTextResponse("refused a sign-out from another site\n", status_code=403)
        if who.cookie is not None:
            self.sessions.pop(who.cookie, None)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    def unavailable(self, request: Request, exc: Exception) -> Response:
        """Redis away while a page is asked for: 503 and what is wrong, one log line (JSON
        for /api/)."""
        reason = describe_unavailable(exc, self._operator.address)
        logger.warning("console: {} {}: {}", request.method, request.url.path, reason)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": f"redis unreachable: {reason}"}, status_code=503)
        return self._page(request, "message.html", 503, title="Redis is unreachable",
                          message=f"{reason}; this page works again once Redis answers",
                          back=request.url.path)


def _letter(key: str, entry: StreamEntry) -> dict[str, Any]:
    pairs = original_pairs(entry)
    meta = dead_letter_meta(entry)
    return {"key": key, "id": entry.id, "pick": Pick(key, entry.id).value,
            "reason": meta.get("dlq_reason", ""), "error": meta.get("dlq_error", ""),
            "deliveries": meta.get("dlq_deliveries", ""), "at": meta.get("dlq_at", ""),
            "source": f"{meta.get('dlq_stream', '?')} {meta.get('dlq_id', '?')}",
            "fields": [(pairs[i], pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)],
            "age_s": waited(entry.id, time.time())}


def _within(wanted: Filter, last: str) -> Callable[[StreamEntry], bool]:
    """Dead letters the filter accepts, up to ``last`` (the newest when it was confirmed)."""
    bound = id_key(last)

    def accepts(entry: StreamEntry) -> bool:
        return id_key(entry.id) <= bound and wanted.accepts(entry)

    return accepts


def _letters_path(name: str) -> str:
    return f"/listeners/{quote(name, safe='')}/dead-letters"


def _local(target: str) -> str:
    """A redirect target on this console only (``//evil`` and ``http://…`` become ``/``)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    if value < 3600:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


async def _form(request: Request) -> dict[str, list[str]] | Response:
    """An urlencoded form, read whole up to BODY_LIMIT (no multipart: nothing uploads)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        return PlainTextResponse("expected a form (application/x-www-form-urlencoded)\n",
                                 status_code=415)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > BODY_LIMIT:
            return PlainTextResponse("form too large\n", status_code=413)
    form: dict[str, list[str]] = {}
    for name, value in parse_qsl(body.decode("utf-8", "surrogateescape"),
                                 keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


class Guard(BaseHTTPMiddleware):
    """Every request: a Host this console answers to (DNS rebinding), then a reader who
    may read (a non-loopback bind: signed in), except for signing in and static files."""

    def __init__(self, app: Any, console: Console) -> None:
        super().__init__(app)
        self.console = console

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint,
                       ) -> Response:
        settings = self.console.settings
        if not host_allowed(request.headers.get("host"), settings.host,
                                     settings.loopback):
            return PlainTextResponse("unknown Host: open the console at 127.0.0.1\n",
                                     status_code=421)
        path = request.url.path
        open_path = path in ("/login", "/logout") or path.startswith("/static/")
        who = caller(request.headers, request.cookies)
        if not open_path and not may_read(self.console.token, self.console.sessions,
                                          settings.loopback, who):
            if request.method == "GET":
                return RedirectResponse(f"/login?next={quote(path)}", status_code=303)
            return PlainTextResponse("sign in first\n", status_code=403)
        try:
            response = await call_next(request)
        except Exception as exc:  # Redis away: said on the page, once per request, no trace
            if not (is_transient(exc) or from_redis(exc)):
                raise
            response = self.console.unavailable(request, exc)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'")
        response.headers["Referrer-Policy"] = "same-origin"
        return response


def console_app(app_settings: AppSettings, settings: ConsoleSettings, token: str) -> Starlette:
    console = Console(app_settings, settings, token)
    page = Callable[[Request], Awaitable[Response]]
    routes: list[Route | Mount] = []

    def get(path: str, endpoint: page) -> None:
        routes.append(Route(path, endpoint, methods=["GET"]))

    def post(path: str, endpoint: page) -> None:
        routes.append(Route(path, endpoint, methods=["POST"]))

    get("/", console.overview_page)
    get("/api/overview", console.overview_json)
    get("/listeners/{name}", console.listener_page)
    get("/listeners/{name}/dead-letters", console.dead_letters_page)
    post("/listeners/{name}/dead-letters/confirm", console.confirm)
    post("/listeners/{name}/dead-letters/apply", console.apply)
    get("/login", console.login_page)
    post("/login", console.login)
    post("/logout", console.logout)
    routes.append(Mount("/static", StaticFiles(directory=str(HERE / "static")),
                        name="static"))
    app = Starlette(routes=routes, lifespan=console.lifespan,
                    middleware=[Middleware(Guard, console=console)])
    app.state.console = console
    return app
