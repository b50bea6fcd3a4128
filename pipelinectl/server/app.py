"""The HTTP control-plane API (v1) over the runtime: FastAPI routes, auth, errors, idempotency.

Response bodies are the `to_dict()` of pipelinectl.model's dataclasses (the
same shape `-o json` prints); those dataclasses are also the documented
response models. Every error, expected or not, leaves through `error_response`
with the body `{code, message, detail, cause}` and an `X-Request-Id`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Header, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from pipelinectl import __version__
from pipelinectl import model as m
from pipelinectl.errors import (
    HTTP_STATUS_ERRORS,
    InternalError,
    PipelinectlError,
    UnprocessableError,
    UsageError,
)

from . import audit
from .auth import Authenticator
from .runtime import Runtime
from .store import dumps, now

log = logging.getLogger("pipelinectl.server")

IDEMPOTENCY_TTL = 24 * 3600
MAX_BODY = 1 << 20  # bytes; the largest legitimate body is a DLQ selection of 10,000 ids
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def canonical_code(status: int) -> str:
    """The canonical code an HTTP status answers with, from errors.py's one table (HTTP_STATUS_ERRORS).

    A 4xx no error class claims (405, 413, 415) is a usage error; a 5xx one (500) is internal.
    """
    cls = HTTP_STATUS_ERRORS.get(status)
    if cls is not None:
        return cls.code
    return UsageError.code if 400 <= status < 500 else InternalError.code


# --- documented shapes -------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """The body of every non-2xx answer."""

    code: str = Field(description="canonical code, e.g. INVALID_ARGUMENT, NOT_FOUND, ABORTED")
    message: str
    detail: dict[str, Any] | None = None
    cause: str | None = None


class Health(BaseModel):
    status: str
    version: str
    auth: bool


@dataclass(kw_only=True)
class PipelineList(m.ResourceList):
    items: list[m.Pipeline] = field(default_factory=list)


@dataclass(kw_only=True)
class ReplayJobList(m.ResourceList):
    items: list[m.ReplayJob] = field(default_factory=list)


@dataclass(kw_only=True)
class DLQItemList(m.ResourceList):
    items: list[m.DLQItem] = field(default_factory=list)


@dataclass(kw_only=True)
class SagaList(m.ResourceList):
    items: list[m.Saga] = field(default_factory=list)


@dataclass(kw_only=True)
class AuditEntryList(m.ResourceList):
    items: list[m.AuditEntry] = field(default_factory=list)


def _not_a_number(value: Any) -> Any:
    """A time is RFC 3339, as documented; pydantic alone would read a bare number as Unix time."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError("expected an RFC 3339 date-time, not a number")
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", value):
        raise ValueError("expected an RFC 3339 date-time, not a number")
    return value


# Every time the API reads, in a query or a body.
Rfc3339Time = Annotated[datetime | None, BeforeValidator(_not_a_number)]


class DryRunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = False


class PauseBody(DryRunBody):
    until: Rfc3339Time = Field(None, description="resume automatically at this time (RFC 3339); "
                                   "must be in the future (else 422)")


class ScaleBody(DryRunBody):
    parallelism: int = Field(ge=0, le=100_000, description="within the stage's [min_parallelism, "
                             "max_parallelism] (else 422)")


class LimitBody(DryRunBody):
    rate: str | None = Field(..., max_length=40, description="items per second, minute or hour: `50/s`, "
                             "`3000/m`, `1/h`; more than zero (else 422); null clears the limit")
    burst: int | None = Field(None, ge=1, le=1_000_000, description="the token bucket's size: items that may "
                              "start back to back; default one second's worth of the rate (at least 1)")


MAX_OFFSET = 2**53 - 1  # the largest integer every JSON reader holds exactly


def _types(**kinds: str) -> dict[str, Any]:
    """JSON Schema `properties` giving each named field one type."""
    return {name: {"type": kind} for name, kind in kinds.items()}


class ReplayBody(DryRunBody):
    """A range by offsets or by times: both ends of one kind, the end after the start (else 422)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["from_offset", "to_offset"],
         "properties": _types(from_offset="integer", to_offset="integer", from_time="null", to_time="null")},
        {"required": ["from_time", "to_time"],
         "properties": _types(from_time="string", to_time="string", from_offset="null", to_offset="null")},
    ]})
    stage: str | None = Field(None, max_length=200, description="default: the pipeline's first stage")
    from_offset: int | None = Field(None, ge=0, le=MAX_OFFSET)
    to_offset: int | None = Field(None, ge=0, le=MAX_OFFSET, description="exclusive; greater than from_offset")
    from_time: Rfc3339Time = None
    to_time: Rfc3339Time = Field(None, description="exclusive; after from_time")


ErrorKindLit = Literal["validation", "transient", "persistent", "fatal"]
SagaStatusLit = Literal["running", "compensating", "completed", "compensated", "failed", "stuck", "cancelled"]
FILTERS = ("stage", "error_kind", "since", "until")



class SelectBody(DryRunBody):
    """Selects DLQ items: non-empty `ids`, `all: true`, or at least one filter (ANDed together)."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["ids"], "properties": {"ids": {"minItems": 1}}},
        {"required": ["all"], "properties": {"all": {"const": True}}},
        *({"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in FILTERS),
    ]})
    ids: list[str] = Field(default_factory=list, max_length=10_000)
    all: bool = False
    stage: str | None = Field(None, min_length=1, max_length=200)
    error_kind: ErrorKindLit | None = None
    since: Rfc3339Time = None
    until: Rfc3339Time = None


# One character that is not whitespace as Python's str.strip() sees it, spelled out: `\S` differs
# between the regex dialects of the server (Rust), JSON Schema (ECMA) and test generators (Python).
NOT_BLANK = r"[^\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


class ReasonBody(DryRunBody):
    reason: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK, description="why; not blank")


class RetryBody(DryRunBody):
    reason: str | None = Field(None, max_length=2000)


class AdvanceBody(ReasonBody):
    step: str = Field(min_length=1, max_length=200, description="the saga's current step (else 409)")
    result: Any = Field(None, description="what the step would have returned; an object merges into the "
                        "saga's data")


# What each documented error answer means; the code in front of it comes from errors.py.
MEANINGS = {
    400: "the request does not match this document",
    401: "no valid bearer token",
    403: "the token's role may not do this",
    404: "no such endpoint, pipeline, stage, DLQ item, replay job or saga",
    409: "the target's state does not allow this (detail.status)",
    412: "If-Match names a version that is no longer current; detail.current is the stage now",
    413: "the request body is larger than 1 MiB",
    429: "throttled; retry after Retry-After",
    500: "unexpected failure; report detail.request_id",
    503: "shutting down; retry after Retry-After",
}
COMMON_ERRORS = (400, 401, 403, 404, 429, 500, 503)
KEY_REUSED = "the Idempotency-Key was used by this token within 24 h for a different request"


def answers(*statuses: int, rules: str | None = None) -> dict[int | str, dict[str, Any]]:
    """An operation's documented error answers, and a 422 that lists `rules`: what a well-formed
    request can still break, that no schema can state."""
    doc: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": f"{canonical_code(status)}: {MEANINGS[status]}"}
        for status in statuses}
    if rules:
        doc[422] = {"model": ErrorBody, "description": f"{canonical_code(422)}: well-formed, but {rules}"}
    return doc


def mutation(*extra: int, rule: str | None = None) -> dict[int | str, dict[str, Any]]:
    return answers(*COMMON_ERRORS, 413, *extra, rules="; ".join(filter(None, (rule, KEY_REUSED))))


READ = answers(*COMMON_ERRORS)
IF_MATCH = r'^(\*|(W/)?"[0-9]{1,18}"|[0-9]{1,18})$'
PAGE_TOKEN = r"^s[0-9]{1,18}$"  # a row id: below 2**63, as SQLite holds it


def query_names(dependant: Any) -> set[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= query_names(sub)
    return names


def error_response(status: int, code: str, message: str, *, detail: Any = None, cause: str | None = None,
                   request_id: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    if detail is not None and not isinstance(detail, dict):
        detail = {"value": detail}
    headers = dict(headers or {})
    if status in (429, 503):
        headers.setdefault("Retry-After", "1")
    if request_id:
        headers["X-Request-Id"] = request_id
    body = {"code": code, "message": message, "detail": detail, "cause": cause}
    return JSONResponse(json.loads(dumps(body)), status_code=status, headers=headers)


# --- the app -------------------------------------------------------------------------------------------------


def create_app(runtime: Runtime | None, auth: Authenticator, *, stop_timeout: float = 10.0) -> FastAPI:
    """Build the API over `runtime` (started and stopped with the app; None only to render the OpenAPI)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        if runtime is not None:
            await runtime.start()
        try:
            yield
        finally:
            if runtime is not None:
                await runtime.stop(stop_timeout)

    def known_query_only(request: Request) -> None:
        """A typo like `?dryrun=true` must not be silently ignored on a mutation: unknown parameters are 400.

        Checked after authentication (see `need`): the list of allowed parameters is for callers only.
        """
        route = request.scope.get("route")
        if route is None or not request.query_params:
            return
        allowed = query_names(route.dependant)
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise UsageError(f"unknown query parameter {unknown[0][:40]!r}",
                             detail={"allowed": sorted(allowed)})

    app = FastAPI(
        title="pipelinectl control plane",
        version=__version__,
        description="Operate pipelines: stages, replays, dead-letter queue and sagas. See docs/api.md.",
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        redirect_slashes=False,
    )
    bearer = HTTPBearer(auto_error=False, description="a token from the server's token file")
    locks: dict[tuple[str, str], asyncio.Lock] = {}

    # errors ------------------------------------------------------------------------------------------------
    def rid(request: Request) -> str | None:
        return getattr(request.state, "request_id", None)

    @app.exception_handler(PipelinectlError)
    async def on_error(request: Request, exc: PipelinectlError) -> JSONResponse:
        return error_response(exc.http_status, exc.code, exc.one_line(), detail=exc.detail, request_id=rid(request))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"]) or "request"
        return error_response(UsageError.http_status, UsageError.code, f"{where}: {first['msg']}",
                              detail={"errors": errors[:20]}, request_id=rid(request))

    def path_methods(request: Request) -> str:
        """Every method of the path (the router's own 405 names only the first route it tried).

        As in OpenAPI, a concrete path wins over a templated one that also matches: `/dlq/redrive` is POST,
        not also the GET of `/dlq/{item_id}`.
        """
        matching = [route for route in app.router.routes if route.matches(request.scope)[0] is not Match.NONE]
        fewest = min((len(getattr(r, "param_convertors", {})) for r in matching), default=0)
        methods = {m for r in matching if len(getattr(r, "param_convertors", {})) == fewest
                   for m in getattr(r, "methods", None) or ()}
        return ", ".join(sorted(methods))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = canonical_code(exc.status_code)
        message = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = path_methods(request)
        return error_response(exc.status_code, code, message, request_id=rid(request), headers=headers)

    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        given = request.headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        request.state.request_id = request_id
        length = request.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            response = error_response(413, canonical_code(413), f"request body larger than {MAX_BODY} bytes",
                                      request_id=request_id)
            return response
        try:
            response = await call_next(request)
        except Exception:  # never leak internals: log here, answer a generic 500
            log.exception("request %s %s failed (request id %s)", request.method, request.url.path, request_id)
            response = error_response(InternalError.http_status, InternalError.code,
                                      "internal error; report the request id", detail={"request_id": request_id})
        response.headers["X-Request-Id"] = request_id
        return response

    # helpers ----------------------------------------------------------------------------------------------
    def running() -> Runtime:
        from pipelinectl.errors import UnavailableError

        if runtime is None or runtime.stopping:
            raise UnavailableError("the control plane is shutting down")
        return runtime

    def if_match_version(value: str | None) -> int | None:
        if value is None or value.strip() == "*":
            return None
        text = value.strip()
        if text.startswith("W/"):
            text = text[2:]
        text = text.strip('"')
        if not text.isdigit() or len(text) > 18:
            raise UsageError(f"If-Match must be a stage version like '\"3\"', got {value[:40]!r}")
        return int(text)

    def respond(obj: m.Resource, status: int = 200, etag: bool = False) -> JSONResponse:
        headers = {"ETag": f'"{obj.version}"'} if etag and isinstance(obj, m.Stage) else None
        return JSONResponse(obj.to_dict(), status_code=status, headers=headers)

    async def mutate(request: Request, principal: str, body: BaseModel | None, dry_run: bool,
                     action: Callable[[], Awaitable[m.Resource]], status: int = 200,
                     etag: bool = False) -> JSONResponse:
        """Run a mutation once per Idempotency-Key: a repeat returns the stored first answer.

        What the action records in the audit trail is attributed to this request's caller.
        """
        caller = audit.Caller(actor=principal, request_id=rid(request),
                              idempotency_key=(request.headers.get("idempotency-key") or None),
                              plan=(request.headers.get("pipelinectl-plan") or "")[:100] or None)
        with audit.acting(caller):
            return await _mutate(request, principal, body, dry_run, action, status, etag)

    async def _mutate(request: Request, principal: str, body: BaseModel | None, dry_run: bool,
                      action: Callable[[], Awaitable[m.Resource]], status: int, etag: bool) -> JSONResponse:
        key = request.headers.get("idempotency-key")
        if not key:
            return respond(await action(), status, etag)
        if len(key) > 200:
            raise UsageError("Idempotency-Key is longer than 200 characters")
        fingerprint = hashlib.sha256(dumps([request.method, request.url.path, str(request.url.query),
                                            body.model_dump(mode="json") if body else None]).encode()).hexdigest()
        store = running().store
        lock = locks.setdefault((key, principal), asyncio.Lock())
        async with lock:
            row = store.idempotent_answer(key, principal, now() - IDEMPOTENCY_TTL)
            if row is not None:
                if row["body_hash"] != fingerprint:
                    raise UnprocessableError("Idempotency-Key was already used for a different request",
                                             hint="use a new key for a new request")
                headers = {"Idempotent-Replayed": "true"}
                stored = json.loads(row["body"])
                if etag and isinstance(stored, dict) and "version" in stored:
                    headers["ETag"] = f'"{stored["version"]}"'
                return JSONResponse(stored, status_code=row["status"], headers=headers)
            obj = await action()
            if not dry_run:
                store.save_idempotent_answer(key, principal, request.method, request.url.path, fingerprint, status,
                                             dumps(obj.to_dict()), now(), expire_before=now() - IDEMPOTENCY_TTL)
        if len(locks) > 10_000:
            locks.clear()
        return respond(obj, status, etag)

    def need(role: str) -> Any:
        """Auth as a dependency, so it answers 401/403 before the body is even validated."""

        async def check(request: Request, _c: HTTPAuthorizationCredentials | None = Security(bearer)) -> str:
            name = auth.require(request.headers.get("authorization"), role).name
            known_query_only(request)
            return name

        return Depends(check)

    VIEWER, OPERATOR, ADMIN = need("viewer"), need("operator"), need("admin")
    # Handlers type these headers `str` with a default of None, not `str | None`: a header is absent or a
    # string, and the document must not tell clients they may send null (they would send "null").
    idem = Header(None, alias="Idempotency-Key", max_length=200,
                  description="a repeated key returns the first answer and never acts twice")
    ifm = Header(None, alias="If-Match", pattern=IF_MATCH,
                 description='the stage version read: "3", W/"3" or 3; * for any (a stale one is 412)')
    page_q = Query(None, pattern=PAGE_TOKEN, description="the previous page's next_page_token, unchanged")
    dry_q = Query(False, description="validate and compute, change nothing")

    async def wrap(value: Any) -> Any:
        return value

    # routes --------------------------------------------------------------------------------------------------
    @app.get("/v1/healthz", response_model=Health, tags=["meta"], responses=answers(400, 500),
             dependencies=[Depends(known_query_only)])
    async def healthz() -> Health:
        return Health(status="ok", version=__version__, auth=auth.enabled)

    @app.get("/v1/pipelines", response_model=PipelineList, tags=["pipelines"], responses=READ)
    async def list_pipelines(request: Request, who: str = VIEWER) -> JSONResponse:
        items = [p.view() for p in running().pipelines.values()]
        return respond(PipelineList(items=items, total=len(items)))

    @app.get("/v1/pipelines/{pipeline}", response_model=m.Pipeline, tags=["pipelines"], responses=READ)
    async def get_pipeline(request: Request, pipeline: str, who: str = VIEWER) -> JSONResponse:
        return respond(running().pipeline(pipeline).view())

    @app.get("/v1/pipelines/{pipeline}/stages/{stage}", response_model=m.Stage, tags=["stages"], responses=READ)
    async def get_stage(request: Request, pipeline: str, stage: str,
                        who: str = VIEWER) -> JSONResponse:
        return respond(running().pipeline(pipeline).stage(stage).view(), etag=True)

    @app.post("/v1/pipelines/{pipeline}/stages/{stage}/pause", response_model=m.Stage, tags=["stages"],
              responses=mutation(409, 412, rule="`until` is not in the future"))
    async def pause(request: Request, pipeline: str, stage: str, body: PauseBody | None = Body(None),
                    dry_run: bool = dry_q, idempotency_key: str = idem, if_match: str = ifm,
                    who: str = OPERATOR) -> JSONResponse:
        body = body or PauseBody()
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        version = if_match_version(if_match)
        return await mutate(request, who, body, dry,
                            lambda: wrap(p.pause(stage, body.until, if_match=version, dry_run=dry)), etag=True)

    @app.post("/v1/pipelines/{pipeline}/stages/{stage}/resume", response_model=m.Stage, tags=["stages"],
              responses=mutation(409, 412))
    async def resume(request: Request, pipeline: str, stage: str, body: DryRunBody | None = Body(None),
                     dry_run: bool = dry_q, idempotency_key: str = idem, if_match: str = ifm,
                     who: str = OPERATOR) -> JSONResponse:
        body = body or DryRunBody()
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        version = if_match_version(if_match)
        return await mutate(request, who, body, dry,
                            lambda: wrap(p.resume(stage, if_match=version, dry_run=dry)), etag=True)

    @app.post("/v1/pipelines/{pipeline}/stages/{stage}/drain", response_model=m.Stage, tags=["stages"],
              responses=mutation(409, 412))
    async def drain(request: Request, pipeline: str, stage: str, body: DryRunBody | None = Body(None),
                    dry_run: bool = dry_q, idempotency_key: str = idem, if_match: str = ifm,
                    who: str = OPERATOR) -> JSONResponse:
        body = body or DryRunBody()
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        version = if_match_version(if_match)
        return await mutate(request, who, body, dry,
                            lambda: wrap(p.drain(stage, if_match=version, dry_run=dry)), etag=True)

    @app.post("/v1/pipelines/{pipeline}/stages/{stage}/scale", response_model=m.Stage, tags=["stages"],
              responses=mutation(412, rule="`parallelism` is outside the stage's [min_parallelism, "
                                            "max_parallelism] (see GET of the stage)"))
    async def scale(request: Request, pipeline: str, stage: str, body: ScaleBody, dry_run: bool = dry_q,
                    idempotency_key: str = idem, if_match: str = ifm,
                    who: str = OPERATOR) -> JSONResponse:
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        version = if_match_version(if_match)
        return await mutate(request, who, body, dry,
                            lambda: wrap(p.scale(stage, body.parallelism, if_match=version, dry_run=dry)), etag=True)

    @app.post("/v1/pipelines/{pipeline}/stages/{stage}/limit", response_model=m.Stage, tags=["stages"],
              responses=mutation(412, rule="the rate is zero, negative or not a rate"))
    async def limit(request: Request, pipeline: str, stage: str, body: LimitBody, dry_run: bool = dry_q,
                    idempotency_key: str = idem, if_match: str = ifm, who: str = OPERATOR) -> JSONResponse:
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        version = if_match_version(if_match)
        return await mutate(request, who, body, dry, lambda: wrap(
            p.limit(stage, body.rate, body.burst, if_match=version, dry_run=dry)), etag=True)

    @app.post("/v1/pipelines/{pipeline}/stages/{stage}/disable", response_model=m.Stage, tags=["stages"],
              responses=mutation(412))
    async def disable(request: Request, pipeline: str, stage: str, body: ReasonBody, dry_run: bool = dry_q,
                      idempotency_key: str = idem, if_match: str = ifm, who: str = OPERATOR) -> JSONResponse:
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        version = if_match_version(if_match)
        return await mutate(request, who, body, dry,
                            lambda: wrap(p.disable(stage, body.reason, if_match=version, dry_run=dry)), etag=True)

    @app.post("/v1/pipelines/{pipeline}/stages/{stage}/enable", response_model=m.Stage, tags=["stages"],
              responses=mutation(412))
    async def enable(request: Request, pipeline: str, stage: str, body: DryRunBody | None = Body(None),
                     dry_run: bool = dry_q, idempotency_key: str = idem, if_match: str = ifm,
                     who: str = OPERATOR) -> JSONResponse:
        body = body or DryRunBody()
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        version = if_match_version(if_match)
        return await mutate(request, who, body, dry,
                            lambda: wrap(p.enable(stage, if_match=version, dry_run=dry)), etag=True)

    @app.post("/v1/pipelines/{pipeline}/stages/{stage}/replay-skipped", response_model=m.ReplayJob,
              status_code=201, tags=["replays"],
              responses={200: {"model": m.ReplayJob, "description": "dry run: the planned job"},
                         **mutation(409)})
    async def replay_skipped(request: Request, pipeline: str, stage: str, body: DryRunBody | None = Body(None),
                             dry_run: bool = dry_q, idempotency_key: str = idem,
                             who: str = OPERATOR) -> JSONResponse:
        body = body or DryRunBody()
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        return await mutate(request, who, body, dry, lambda: wrap(p.replay_skipped(stage, dry_run=dry)),
                            status=200 if dry else 201)

    @app.post("/v1/pipelines/{pipeline}/replays", response_model=m.ReplayJob, status_code=201, tags=["replays"],
              responses={200: {"model": m.ReplayJob, "description": "dry run: the planned job"},
                         **mutation(rule="the range ends where it starts or before it")})
    async def start_replay(request: Request, pipeline: str, body: ReplayBody, dry_run: bool = dry_q,
                           idempotency_key: str = idem,
                           who: str = OPERATOR) -> JSONResponse:
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        req = m.ReplayRequest(pipeline=pipeline, stage=body.stage, from_offset=body.from_offset,
                              to_offset=body.to_offset, from_time=body.from_time, to_time=body.to_time, dry_run=dry)
        return await mutate(request, who, body, dry, lambda: wrap(p.replay_start(req)), status=200 if dry else 201)

    @app.get("/v1/pipelines/{pipeline}/replays", response_model=ReplayJobList, tags=["replays"], responses=READ)
    async def list_replays(request: Request, pipeline: str,
                           who: str = VIEWER) -> JSONResponse:
        items = running().pipeline(pipeline).replay_list()
        return respond(ReplayJobList(items=items, total=len(items)))

    @app.get("/v1/pipelines/{pipeline}/replays/{job_id}", response_model=m.ReplayJob, tags=["replays"],
             responses=READ)
    async def get_replay(request: Request, pipeline: str, job_id: str,
                         who: str = VIEWER) -> JSONResponse:
        return respond(running().pipeline(pipeline).replay_get(job_id))

    @app.post("/v1/pipelines/{pipeline}/replays/{job_id}/cancel", response_model=m.ReplayJob, tags=["replays"],
              responses=mutation(409))
    async def cancel_replay(request: Request, pipeline: str, job_id: str, idempotency_key: str = idem,
                            who: str = OPERATOR) -> JSONResponse:
        p = running().pipeline(pipeline)
        return await mutate(request, who, None, False, lambda: wrap(p.replay_cancel(job_id)))

    @app.get("/v1/pipelines/{pipeline}/dlq", response_model=DLQItemList, tags=["dlq"], responses=READ)
    async def list_dlq(request: Request, pipeline: str, stage: str | None = Query(None, max_length=200),
                       error_kind: ErrorKindLit | None = None, since: Rfc3339Time = None,
                       until: Rfc3339Time = None, page_size: int = Query(100, ge=1, le=1000),
                       page_token: str | None = page_q,
                       who: str = VIEWER) -> JSONResponse:
        p = running().pipeline(pipeline)
        f = m.DLQFilter(pipeline=pipeline, stage=stage, error_kind=error_kind, since=since, until=until)
        items, token, total = p.dlq_list(f, page_size, page_token)
        return respond(DLQItemList(items=items, next_page_token=token, total=total))

    @app.get("/v1/pipelines/{pipeline}/dlq/{item_id}", response_model=m.DLQItem, tags=["dlq"], responses=READ)
    async def get_dlq(request: Request, pipeline: str, item_id: str,
                      who: str = VIEWER) -> JSONResponse:
        return respond(running().pipeline(pipeline).dlq_get(item_id))

    def dlq_filter(pipeline: str, body: SelectBody) -> m.DLQFilter:
        return m.DLQFilter(pipeline=pipeline, ids=list(body.ids), all=body.all, stage=body.stage,
                           error_kind=body.error_kind, since=body.since, until=body.until)

    @app.post("/v1/pipelines/{pipeline}/dlq/redrive", response_model=m.BulkResult, tags=["dlq"],
              responses=mutation())
    async def redrive(request: Request, pipeline: str, body: SelectBody, dry_run: bool = dry_q,
                      idempotency_key: str = idem,
                      who: str = OPERATOR) -> JSONResponse:
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        return await mutate(request, who, body, dry, lambda: wrap(p.dlq_redrive(dlq_filter(pipeline, body), dry)))

    @app.post("/v1/pipelines/{pipeline}/dlq/purge", response_model=m.BulkResult, tags=["dlq"],
              responses=mutation())
    async def purge(request: Request, pipeline: str, body: SelectBody, dry_run: bool = dry_q,
                    idempotency_key: str = idem,
                    who: str = ADMIN) -> JSONResponse:
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        return await mutate(request, who, body, dry, lambda: wrap(p.dlq_purge(dlq_filter(pipeline, body), dry)))

    @app.get("/v1/pipelines/{pipeline}/sagas", response_model=SagaList, tags=["sagas"], responses=READ)
    async def list_sagas(request: Request, pipeline: str, status: SagaStatusLit | None = None,
                         definition: str | None = Query(None, max_length=200),
                         page_size: int = Query(100, ge=1, le=1000),
                         page_token: str | None = page_q,
                         who: str = VIEWER) -> JSONResponse:
        p = running().pipeline(pipeline)
        items, token, total = p.sagas.list(status, definition, page_size, page_token)
        return respond(SagaList(items=items, next_page_token=token, total=total))

    @app.get("/v1/pipelines/{pipeline}/sagas/{saga_id}", response_model=m.Saga, tags=["sagas"], responses=READ)
    async def get_saga(request: Request, pipeline: str, saga_id: str,
                       who: str = VIEWER) -> JSONResponse:
        return respond(running().pipeline(pipeline).sagas.get(saga_id))

    @app.post("/v1/pipelines/{pipeline}/sagas/{saga_id}/force-fail", response_model=m.Saga, tags=["sagas"],
              responses=mutation(409))
    async def force_fail(request: Request, pipeline: str, saga_id: str, body: ReasonBody, dry_run: bool = dry_q,
                         idempotency_key: str = idem,
                         who: str = ADMIN) -> JSONResponse:
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        return await mutate(request, who, body, dry, lambda: p.sagas.force_fail(saga_id, body.reason, dry))

    @app.post("/v1/pipelines/{pipeline}/sagas/{saga_id}/retry", response_model=m.Saga, tags=["sagas"],
              responses=mutation(409))
    async def retry(request: Request, pipeline: str, saga_id: str, body: RetryBody | None = Body(None),
                    dry_run: bool = dry_q, idempotency_key: str = idem,
                    who: str = OPERATOR) -> JSONResponse:
        body = body or RetryBody()
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        return await mutate(request, who, body, dry, lambda: p.sagas.retry(saga_id, body.reason, dry))

    @app.post("/v1/pipelines/{pipeline}/sagas/{saga_id}/force-complete", response_model=m.Saga, tags=["sagas"],
              responses=mutation(409))
    async def force_complete(request: Request, pipeline: str, saga_id: str, body: ReasonBody,
                             dry_run: bool = dry_q, idempotency_key: str = idem,
                             who: str = ADMIN) -> JSONResponse:
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        return await mutate(request, who, body, dry, lambda: p.sagas.force_complete(saga_id, body.reason, dry))

    @app.post("/v1/pipelines/{pipeline}/sagas/{saga_id}/cancel", response_model=m.Saga, tags=["sagas"],
              responses=mutation(409))
    async def cancel_saga(request: Request, pipeline: str, saga_id: str, body: ReasonBody, dry_run: bool = dry_q,
                          idempotency_key: str = idem,
                          who: str = ADMIN) -> JSONResponse:
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        return await mutate(request, who, body, dry, lambda: p.sagas.cancel(saga_id, body.reason, dry))

    @app.post("/v1/pipelines/{pipeline}/sagas/{saga_id}/advance", response_model=m.Saga, tags=["sagas"],
              responses=mutation(409))
    async def advance_saga(request: Request, pipeline: str, saga_id: str, body: AdvanceBody,
                           dry_run: bool = dry_q, idempotency_key: str = idem,
                           who: str = ADMIN) -> JSONResponse:
        dry = dry_run or body.dry_run
        p = running().pipeline(pipeline)
        return await mutate(request, who, body, dry,
                            lambda: p.sagas.advance(saga_id, body.step, body.reason, body.result, dry))

    @app.get("/v1/audit", response_model=AuditEntryList, tags=["audit"], responses=READ)
    async def list_audit(request: Request, since: Rfc3339Time = None, until: Rfc3339Time = None,
                         actor: str | None = Query(None, max_length=200, description="a token's name, or system"),
                         target: str | None = Query(None, max_length=200, description="a stage, saga or job"),
                         verb: str | None = Query(None, max_length=200, description="e.g. pause, saga cancel"),
                         pipeline: str | None = Query(None, max_length=200),
                         order: Literal["oldest", "newest"] = Query("oldest", description="newest: newest first"),
                         page_size: int = Query(100, ge=1, le=1000), page_token: str | None = page_q,
                         who: str = VIEWER) -> JSONResponse:
        f = m.AuditFilter(since=since, until=until, actor=actor, target=target, verb=verb, pipeline=pipeline,
                          newest_first=order == "newest")
        items, token, total = audit.listing(running().store, f, page_size, page_token)
        return respond(AuditEntryList(items=items, next_page_token=token, total=total))

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, minus its own 422 shape: validation errors here are 400 with ErrorBody.

        (A 422 an operation documents itself, for rules beyond the schema, stays.)
        """
        if app.openapi_schema:
            return app.openapi_schema
        doc = default_openapi()
        for item in doc.get("paths", {}).values():
            for op in item.values():
                answers = op.get("responses", {}) if isinstance(op, dict) else {}
                if "HTTPValidationError" in json.dumps(answers.get("422", {})):
                    answers.pop("422")
        schemas = doc.get("components", {}).get("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
    return app
