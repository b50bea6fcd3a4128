"""The dashboard's web app: pages, fragments, the live stream, actions, and the guard in front of them.

Pages are rendered on the server from the drivers' models by Jinja2 templates with
autoescape on, so whatever the plane sends (a DLQ payload, an error message, a
stage name) is text in the page, never markup. htmx (vendored in static/) swaps
fragments in place, and each pipeline page polls its live fragment about once a
second: one rendered fragment per status read, shared by every page watching
that pipeline.

Security (see docs/ui.md): `Guard` admits a request only with this server's
Host, and the access token (once in the printed URL, which sets a cookie; then
the cookie, or `Authorization: Bearer`); writes also need `--allow-writes` and
the page's CSRF token. Every response carries a Content-Security-Policy that
allows no inline script and nothing from another origin. The plane's own
credentials stay in this process: the browser only ever talks to this server.
"""

from __future__ import annotations

import contextlib
import heapq
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pipelinectl.errors import PipelinectlError
from pipelinectl.output import clip_text

from . import actions, graph
from .cursors import PAGE_SIZE, Cursors
from .planes import HISTORY_SECONDS, METRICS, Plane, Planes, Problem, Read

HERE = Path(__file__).parent
LIVE_INTERVAL = 1.0  # seconds between live updates of a pipeline page
CARD_MAX_AGE = 2.0  # an overview card's read may be this old
ERRORS_MAX_AGE = 5.0
ERRORS_WINDOW = timedelta(minutes=15)
ERRORS_SHOWN = 20
ERRORS_SCAN = 5000  # dead letters read at most to find the newest of the window
SAGAS_SHOWN = 200
PAYLOAD_PREVIEW = 20_000  # characters of a DLQ payload shown
MAX_FORM_BYTES = 64 * 1024
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
IN_FLIGHT = ("running", "compensating", "stuck")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass
class Settings:
    token: str  # the access token in the printed URL
    csrf: str  # sent back by the page with every write
    port: int
    allow_writes: bool = False
    current_context: str | None = None
    interval: float = LIVE_INTERVAL

    @property
    def cookie(self) -> str:
        return f"pipelinectl-ui-{self.port}"  # cookies ignore ports: one name per server

    @property
    def origins(self) -> tuple[str, ...]:
        return (f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}")


# -- the guard ----------------------------------------------------------------------------------------
def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def _forbidden(message: str, status: int = 403) -> HTMLResponse:
    body = ("<!doctype html><meta charset=utf-8><title>Forbidden</title>"
            f"<h1>{status} Forbidden</h1><p>{message}</p>")
    return HTMLResponse(body, status_code=status)


class Guard:
    """ASGI middleware in front of every route: Host, access token, same-origin POSTs, security headers."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.hosts = {f"127.0.0.1:{settings.port}", f"localhost:{settings.port}"}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self._refusal(request)
        if response is None and "token" in request.query_params:
            response = self._enter(request)
        if response is not None:
            await self._secured(response)(scope, receive, send)
            return

        async def secured_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in self._headers(scope["path"]).items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, secured_send)

    def _refusal(self, request: Request) -> Response | None:
        if request.headers.get("host") not in self.hosts:
            return _forbidden("This dashboard answers only on its loopback address.")
        if request.method not in ("GET", "HEAD", "POST"):
            return _forbidden("Method not allowed.", 405)
        origin = request.headers.get("origin")
        if request.method == "POST" and origin is not None and origin not in self.settings.origins:
            return _forbidden("Cross-origin requests are refused; nothing was changed.")
        if "token" in request.query_params:
            if _same(request.query_params.get("token"), self.settings.token):
                return None
            return _forbidden("Wrong access token: open the URL that 'pipelinectl ui' printed.")
        if _same(request.cookies.get(self.settings.cookie), self.settings.token):
            return None
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and _same(auth[7:].strip(), self.settings.token):
            return None
        return _forbidden("This dashboard needs its access token: open the URL that 'pipelinectl ui' printed "
                          "(it carries the token).")

    def _enter(self, request: Request) -> Response:
        """The token came in the URL: keep it in a cookie and take it out of the address bar (Jupyter's way)."""
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(self.settings.cookie, self.settings.token, httponly=True, samesite="strict", path="/")
        return response

    def _secured(self, response: Response) -> Response:
        for key, value in self._headers("").items():
            response.headers[key] = value
        return response

    @staticmethod
    def _headers(path: str) -> dict[str, str]:
        headers = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
                   "referrer-policy": "no-referrer", "x-frame-options": "DENY",
                   "cross-origin-resource-policy": "same-origin"}
        if not path.startswith("/static/"):
            headers["cache-control"] = "no-store"
        return headers


# -- helpers the templates use ---------------------------------------------------------------------------
def link(path: str, **params: Any) -> str:
    """A URL of this app; names travel in the query string, so any character in them is safe."""
    shown = {k: v for k, v in params.items() if v not in (None, "")}
    return path + (f"?{urlencode(shown)}" if shown else "")


def when(value: Any) -> str:
    if value in (None, ""):
        return "-"
    if isinstance(value, datetime):
        at = value if value.tzinfo else value.replace(tzinfo=UTC)
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return str(value)


def ago(value: Any) -> str:
    if not isinstance(value, datetime):
        return ""
    at = value if value.tzinfo else value.replace(tzinfo=UTC)
    seconds = int((datetime.now(UTC) - at).total_seconds())
    if seconds < 0:
        return "in the future"
    if seconds < 90:
        return f"{seconds}s ago"
    if seconds < 5400:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def duration(start: Any, end: Any) -> str:
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return ""
    seconds = (end - start).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s" if seconds < 120 else \
        f"{seconds / 60:.1f} min"


def preview(payload: Any) -> tuple[str, int]:
    """A payload as text (JSON indented) and how many characters were left out."""
    if isinstance(payload, str):
        text = payload
    else:
        text = json.dumps(payload, indent=2, ensure_ascii=False, default=str)
    if len(text) <= PAYLOAD_PREVIEW:
        return text, 0
    return text[:PAYLOAD_PREVIEW], len(text) - PAYLOAD_PREVIEW


def compact(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)
    return str(value)


def _page_number(text: str | None) -> int:
    """A listing's `page=` (0-based); anything else is the first page."""
    try:
        return max(0, int(text or 0))
    except ValueError:
        return 0


class NotFound(Exception):
    pass


# -- the app -----------------------------------------------------------------------------------------------
class Dashboard:
    """The routes, over the planes (one per context), DLQ cursors and pending bulk plans."""

    def __init__(self, planes: Planes, settings: Settings) -> None:
        self.planes = planes
        self.settings = settings
        self.cursors = Cursors()
        self.plans = actions.Plans()
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.globals.update(link=link, ui=settings)
        env.filters.update(when=when, ago=ago, clip=clip_text, compact=compact, duration=duration)

    # -- plumbing ----------------------------------------------------------------------------------------
    def _plane(self, request: Request) -> Plane:
        plane = self.planes.get(request.query_params.get("c", ""))
        if plane is None:
            raise NotFound(f"no context '{request.query_params.get('c', '')}' in this dashboard")
        return plane

    @staticmethod
    def _pipeline(request: Request) -> str:
        name = request.query_params.get("p", "").strip()
        if not name:
            raise NotFound("no pipeline named in the address (p=...)")
        return name

    def page(self, request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        return self.templates.TemplateResponse(request, name, {"planes": list(self.planes), **context},
                                               status_code=status)

    def render(self, name: str, context: dict[str, Any]) -> str:
        return self.templates.get_template(name).render(context)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return self.page(request, "notfound.html", {"message": str(exc)}, status=404)

    # -- overview ------------------------------------------------------------------------------------------
    def overview(self, request: Request) -> Response:
        return self.page(request, "overview.html", {})

    def card(self, request: Request) -> Response:
        plane = self._plane(request)
        started = time.perf_counter()
        read = plane.status(None, max_age=CARD_MAX_AGE)
        problem = read.problem
        driver, url = "?", ""
        try:
            driver, url = plane.driver, plane.url
        except PipelinectlError as exc:
            problem = problem or Problem.of(exc, plane.session)
        rows = []
        for p in read.pipelines:
            states = [graph.health(s) for s in p.stages]
            rows.append({"pipeline": p, "states": states, "failing": states.count("failing"),
                         "stopped": sum(1 for st in states if st not in ("running", "failing"))})
        return HTMLResponse(self.render("_card.html", {
            "plane": plane, "driver": driver, "url": url, "problem": problem, "pipelines": rows,
            "has_dlq": plane.can("dlq-list"), "has_sagas": plane.can("saga-list"),
            "has_audit": not problem and plane.can("audit"),
            "ms": round((time.perf_counter() - started) * 1000),
            "stamp": time.strftime("%H:%M:%S"), "current": plane.name == self.settings.current_context}))

    # -- one pipeline ---------------------------------------------------------------------------------------
    def pipeline_page(self, request: Request) -> Response:
        plane, name = self._plane(request), self._pipeline(request)
        read = plane.status(name, max_age=self.settings.interval * 0.8)
        return self.page(request, "pipeline.html", {
            "plane": plane, "name": name, "live": self.live_html(plane, name, read),
            "stages": self._stages(read, name)})

    @staticmethod
    def _attempt(plane: Plane, fn: Any) -> tuple[Any, Problem | None]:
        """`fn(session)` with the context's driver, or why it failed (the page shows it in place)."""
        try:
            return plane.call(fn), None
        except Exception as exc:
            return None, Problem.of(exc, plane.session)

    @staticmethod
    def _stages(read: Read, name: str) -> list[Any]:
        return [s for p in read.pipelines if p.name == name for s in p.stages]

    def live_html(self, plane: Plane, name: str, read: Read) -> str:
        """The graph and metrics of one read, rendered once however many pages show it."""
        html = read.rendered.get("live")
        if html is None:
            pipeline = next((p for p in read.pipelines if p.name == name), None)
            rows = []
            for s in pipeline.stages if pipeline else []:
                rows.append({"stage": s, "state": graph.health(s), "cells": graph.stage_row(s),
                             "sparks": graph.sparklines(plane.history(name, s.name), METRICS)})
            html = self.render("_live.html", {
                "plane": plane, "name": name, "pipeline": pipeline, "problem": read.problem, "rows": rows,
                "graph": graph.layout(pipeline) if pipeline else None, "stamp": time.strftime("%H:%M:%S"),
                "has_dlq": plane.can("dlq-list"),
                "span": int(HISTORY_SECONDS)})
            read.rendered["live"] = html
        return html

    def live(self, request: Request) -> Response:
        """The live fragment, polled by each pipeline page about once a second (see docs/ui.md: why not SSE)."""
        plane, name = self._plane(request), self._pipeline(request)
        return HTMLResponse(self.live_html(plane, name, plane.status(name, max_age=self.settings.interval * 0.8)))

    def errors(self, request: Request) -> Response:
        """Recent errors: counts by kind from the stages, and the newest dead letters of the window."""
        from pipelinectl.model import DLQFilter

        plane, name = self._plane(request), self._pipeline(request)
        stages = self._stages(plane.status(name, max_age=ERRORS_MAX_AGE), name)
        kinds: dict[str, dict[str, int]] = {}
        for s in stages:
            for kind, n in (s.errors_by_kind or {}).items():
                if n:
                    kinds.setdefault(kind, {})[s.name] = n
        since = datetime.now(UTC) - ERRORS_WINDOW

        def newest(session: Any) -> list[Any]:
            window = itertools.islice(session.plane.dlq_list(DLQFilter(pipeline=name, since=since), page_size=500),
                                      ERRORS_SCAN)
            return heapq.nlargest(ERRORS_SHOWN, window, key=lambda item: item.last_seen or EPOCH)

        read = plane.shared(("errors", name), ERRORS_MAX_AGE, newest)
        return HTMLResponse(self.render("_errors.html", {
            "plane": plane, "name": name, "kinds": sorted(kinds.items()), "items": read.value or [],
            "problem": read.problem, "window": int(ERRORS_WINDOW.total_seconds() // 60)}))

    # -- dead letters ---------------------------------------------------------------------------------------
    def dlq(self, request: Request) -> Response:
        from pipelinectl.cli.dlq import build_selection
        from pipelinectl.model import ERROR_KINDS

        plane, name = self._plane(request), self._pipeline(request)
        q = request.query_params
        filters = {k: (q.get(k) or "").strip() or None for k in ("stage", "error_kind", "since", "until")}
        page, problem = None, None
        try:
            selection = plane.call(lambda s: build_selection(s, name, **filters))
            page = self.cursors.page(plane, selection, q.get("browse"), _page_number(q.get("page")))
        except Exception as exc:
            problem = Problem.of(exc, plane.session)
        stages = self._stages(plane.status(name, max_age=CARD_MAX_AGE), name)
        return self.page(request, "dlq.html", {
            "plane": plane, "name": name, "filters": filters, "page": page, "problem": problem,
            "stages": [s.name for s in stages], "kinds": ERROR_KINDS, "page_size": PAGE_SIZE})

    def dlq_item(self, request: Request) -> Response:
        plane, name = self._plane(request), self._pipeline(request)
        item_id = request.query_params.get("id", "")
        item, problem = self._attempt(plane, lambda s: s.plane.dlq_show(name, item_id))
        text, more = preview(item.payload) if item is not None else ("", 0)
        return self.page(request, "dlq_item.html", {
            "plane": plane, "name": name, "item_id": item_id, "item": item, "problem": problem,
            "payload": text, "more": more})

    # -- audit trail ----------------------------------------------------------------------------------------
    def audit(self, request: Request) -> Response:
        """The plane's audit trail (`pipelinectl audit`), newest first, in cursor pages as the DLQ browser pages."""
        from pipelinectl.model import AuditFilter

        plane = self._plane(request)
        q = request.query_params
        name = (q.get("p") or "").strip() or None  # from a pipeline's tabs: its entries only
        filters = {k: (q.get(k) or "").strip() or None for k in ("actor", "target", "verb")}
        page, problem = None, None
        try:
            selection = AuditFilter(pipeline=name, newest_first=True, **filters)
            page = self.cursors.page(plane, selection, q.get("browse"), _page_number(q.get("page")))
        except Exception as exc:  # a driver without a trail says so in place (UnsupportedError)
            problem = Problem.of(exc, plane.session)
        return self.page(request, "audit.html", {
            "plane": plane, "name": name, "filters": filters, "page": page, "problem": problem,
            "page_size": PAGE_SIZE})

    # -- sagas --------------------------------------------------------------------------------------------
    def sagas(self, request: Request) -> Response:
        from pipelinectl.model import SAGA_STATUSES, SagaFilter

        plane, name = self._plane(request), self._pipeline(request)
        wanted = request.query_params.get("status") or "in-flight"
        statuses: list[str | None] = list(IN_FLIGHT) if wanted == "in-flight" else \
            [None] if wanted == "all" else [wanted]
        sagas: list[Any] = []
        problem = None
        more = False
        try:
            if wanted not in ("in-flight", "all", *SAGA_STATUSES):
                from pipelinectl.errors import UsageError

                raise UsageError(f"invalid status '{wanted}'", hint=f"choose from {', '.join(SAGA_STATUSES)}")
            for status in statuses:
                found = plane.call(lambda s, st=status: list(itertools.islice(
                    s.plane.saga_list(SagaFilter(pipeline=name, status=st), page_size=SAGAS_SHOWN),
                    SAGAS_SHOWN + 1)))
                more = more or len(found) > SAGAS_SHOWN
                sagas += found[:SAGAS_SHOWN]
        except Exception as exc:
            problem = Problem.of(exc, plane.session)
        return self.page(request, "sagas.html", {
            "plane": plane, "name": name, "sagas": sagas, "problem": problem, "wanted": wanted,
            "statuses": SAGA_STATUSES, "more": more, "shown": SAGAS_SHOWN})

    def saga(self, request: Request) -> Response:
        plane, name = self._plane(request), self._pipeline(request)
        saga_id = request.query_params.get("id", "")
        saga, problem = self._attempt(plane, lambda s: s.plane.saga_show(name, saga_id))
        details = dict(saga.details or {}) if saga else {}
        pending = [p for p in details.pop("pending_activities", None) or [] if isinstance(p, dict)]
        points = details.pop("reset_points", None)
        return self.page(request, "saga.html", {
            "plane": plane, "name": name, "saga_id": saga_id, "saga": saga, "problem": problem,
            "pending": pending, "points": points if isinstance(points, dict) else {}, "details": details})

    # -- actions --------------------------------------------------------------------------------------------
    async def act(self, request: Request) -> Response:
        step = request.path_params["step"]
        if step not in ("plan", "apply", "cancel"):
            raise NotFound(f"no action step '{step}'")
        form = await self._form(request)
        if form is None:
            return _forbidden("Actions take a small url-encoded form; nothing was changed.", 400)
        if not self.settings.allow_writes:
            return _forbidden("Writes are off in this dashboard (start it with --allow-writes); nothing was changed.")
        if not _same(request.headers.get("x-csrf-token") or str(form.get("csrf") or ""), self.settings.csrf):
            return _forbidden("Missing or wrong CSRF token; nothing was changed.")
        if step == "cancel":
            return HTMLResponse(self.render("_outcome.html", {"cancelled": True}))
        plane = self.planes.get(str(form.get("c") or ""))
        if plane is None:
            raise NotFound(f"no context '{form.get('c')}' in this dashboard")

        def run() -> str:
            try:
                if step == "plan":
                    confirmation = actions.plan(plane, self.plans, form)
                    return self.render("_confirm.html", {"plane": plane, "c": confirmation})
                outcome = actions.apply(plane, self.plans, form)
                return self.render("_outcome.html", {"plane": plane, "outcome": outcome})
            except Exception as exc:  # the plane's refusal (or ours), shown where the answer goes
                return self.render("_outcome.html", {"plane": plane, "refused": Problem.of(exc, plane.session)})

        return HTMLResponse(await run_in_threadpool(run))

    @staticmethod
    async def _form(request: Request) -> dict[str, str] | None:
        """The url-encoded form htmx sends (parsed here: no multipart, so no extra dependency)."""
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return None
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return None
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))

    # -- lifetime -------------------------------------------------------------------------------------------
    def close(self) -> None:
        self.cursors.close()
        self.planes.close()


def create_app(planes: Planes, settings: Settings) -> Guard:
    """The ASGI app: Guard around the Starlette routes."""
    dashboard = Dashboard(planes, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await run_in_threadpool(dashboard.close)

    routes = [
        Route("/", dashboard.overview),
        Route("/card", dashboard.card),
        Route("/pipeline", dashboard.pipeline_page),
        Route("/live", dashboard.live),
        Route("/errors", dashboard.errors),
        Route("/dlq", dashboard.dlq),
        Route("/dlq/item", dashboard.dlq_item),
        Route("/sagas", dashboard.sagas),
        Route("/saga", dashboard.saga),
        Route("/audit", dashboard.audit),
        Route("/act/{step:str}", dashboard.act, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={NotFound: dashboard.not_found})
    return Guard(app, settings)
