"""The `http` driver: the ControlPlane protocol over the control-plane API v1 (docs/api.md).

Why it looks the way it does:

- One request path (`_call`) owns the deadline, retries, auth, tracing and the
  mapping of API errors to `PipelinectlError` kinds, so every verb behaves alike.
- Reads retry transient failures (connect errors, resets, 429/502/503/504)
  with exponential backoff and full jitter, honouring `Retry-After`, until the
  connection's deadline (`--timeout`). Writes carry one `Idempotency-Key` per
  verb call, the same on every retry; that key is what makes retrying them safe.
- Lists (`dlq_list`, `saga_list`) are generators that follow `page_token`, so a
  large DLQ streams instead of being held in memory.
- The bearer token is read from `connection.token()` at the first request and
  never appears in a trace line or an error (see redact.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from pipelinectl.errors import (
    DeadlineExceededError,
    InternalError,
    PermissionDeniedError,
    PipelinectlError,
    StaleVersionError,
    UnauthenticatedError,
    UnavailableError,
    UnreachableError,
    UnsupportedError,
    UsageError,
    error_class_for_status,
    from_canonical,
)
from pipelinectl.model import (
    AuditEntry,
    AuditFilter,
    BulkResult,
    DLQFilter,
    DLQItem,
    Pipeline,
    RateLimit,
    ReplayJob,
    ReplayRequest,
    Saga,
    SagaFilter,
    Stage,
    format_time,
)
from pipelinectl.plane import Capability, Connection, current_plan
from pipelinectl.redact import REDACTED, redact
from pipelinectl.transport import (
    DEFAULT_BACKOFF,
    UNREACHABLE_WITHIN,
    TransportFailure,
    connect_timeout,
    http_client,
    ssl_context,
    unsendable,
)

if TYPE_CHECKING:
    import httpx

    from pipelinectl.transport import Response

RETRY_STATUSES = frozenset({429, 502, 503, 504})
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})


def _seg(value: str) -> str:
    """One path segment, safely quoted (names may contain anything)."""
    return quote(str(value), safe="")


class HttpControlPlane:
    """ControlPlane over HTTP. Build with a Connection; `transport`/`sleep` are for tests."""

    driver = "http"
    url_schemes = ("http", "https")
    capabilities = frozenset(Capability) - {
        Capability.SAGA_QUERY,
        Capability.SAGA_BATCH,
        Capability.SAGA_TERMINATE,
    }

    # Retry shape (pipelinectl.transport): full jitter over base * 2**attempt, capped; at most `max_attempts` tries.
    backoff = DEFAULT_BACKOFF
    max_attempts = 6
    min_attempt_timeout = 2.0  # a read attempt gets max(this, deadline/3) before it is retried

    def __init__(self, connection: Connection, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.connection = connection
        parts = urlsplit(connection.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                f"context '{connection.context}': url '{connection.url}' is not an http(s) URL",
                hint="e.g. http://127.0.0.1:8765 or https://plane.example.com",
            )
        self.base_url = connection.url.rstrip("/")
        self._sleep = sleep
        self._clock = clock
        settings = connection.settings or {}
        if "retries" in settings:  # `config set-context NAME --set retries=N`
            try:
                self.max_attempts = 1 + max(0, int(settings["retries"]))
            except (TypeError, ValueError):
                raise UsageError(f"context '{connection.context}': setting 'retries' must be a number") from None
        self.last_request_id: str | None = None  # of the last answered request: for the audit log
        self.last_replayed = False  # the server answered from its idempotency store
        # ... to a write's first attempt: an earlier call with the same key had acted (not a retry of this one)
        self.last_replayed_earlier = False
        # No TLS on an http:// connection (redirects are not followed): skip loading a CA bundle.
        # The verifying contexts are built once per process: --all-contexts builds many clients.
        verify = ssl_context(connection) if parts.scheme == "https" else False
        self._connect_timeout = connect_timeout(connection)
        # The stdlib client (no httpx import on the CLI's path); httpx for a proxy or a test's transport.
        self._client = http_client(self.base_url, verify=verify, transport=transport,
                                   headers={"User-Agent": self._user_agent(), **(connection.headers or {})})

    # -- setup --------------------------------------------------------------
    @staticmethod
    def _user_agent() -> str:
        from pipelinectl import __version__

        return f"pipelinectl/{__version__}"

    def close(self) -> None:
        self._client.close()

    # -- the one request path -----------------------------------------------
    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None, if_match: int | None = None,
              idempotency_key: str | None = None) -> Any:
        """Send one verb's request, retrying what is safe to retry; return the decoded JSON."""
        conn = self.connection
        url = self.base_url + path
        write = method not in ("GET", "HEAD")
        headers: dict[str, str] = {"Accept": "application/json", "X-Request-Id": uuid.uuid4().hex}
        token = conn.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if write:
            headers.update(self._write_headers(method, path, query, body, idempotency_key))
        if if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        started = self._clock()
        deadline = started + conn.timeout
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise self._deadline_error(method, url, attempt - 1, started)
            # A read attempt that hangs is abandoned after a share of the deadline and retried;
            # a write keeps the whole remaining time (the plane may legitimately be busy acting).
            read = remaining if write else min(remaining, max(self.min_attempt_timeout, conn.timeout / 3))
            self._trace(f"> {method} {self._show_url(url, query)} {self._show_headers(headers)}")
            sent = self._clock()
            try:
                response = self._client.request(method, url, params=query or None, json=body, headers=headers,
                                                connect=min(remaining, self._connect_timeout), read=read)
            except TransportFailure as exc:
                if exc.kind == "invalid-url":  # e.g. an ID longer than any URL may be: nothing was sent
                    raise unsendable(method, exc) from None
                if exc.kind in ("timeout", "connect-timeout"):
                    self._trace(f"< {method} {url} timed out after {self._ms(sent)} ({exc.name})")
                    if self._clock() >= deadline:
                        raise self._deadline_error(method, url, attempt, started) from None
                    failure = self._unreachable(exc, attempt, started)
                    if exc.kind == "connect-timeout":
                        failure = UnreachableError(failure.message, hint=failure.hint)
                else:
                    self._trace(f"< {method} {url} failed after {self._ms(sent)}: {self._reason(exc)}")
                    failure = self._unreachable(exc, attempt, started)
                    if not self._transient(exc):
                        raise failure from None
                retry_after = None
            else:
                request_id = response.headers.get("X-Request-Id") or headers["X-Request-Id"]
                self._trace(
                    f"< {response.status_code} {response.reason_phrase} {method} {url} "
                    f"{self._ms(sent)} request-id={request_id}"
                    + (" (idempotent replay)" if response.headers.get("Idempotent-Replayed") else "")
                )
                if 300 <= response.status_code < 400:  # not followed: a token must not travel on by itself
                    where = response.headers.get("Location", "elsewhere")
                    raise UsageError(f"{method} {url} was redirected (HTTP {response.status_code}) to {redact(where)}",
                                     hint=f"set the url of context '{conn.context}' to the control plane's own address")
                if response.status_code < 400:
                    self.last_request_id = request_id
                    self.last_replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
                    self.last_replayed_earlier = self.last_replayed and attempt == 1
                    return self._decode(response, method, url)
                failure = self._api_error(response, request_id)
                if response.status_code not in RETRY_STATUSES:
                    self.last_request_id = request_id
                    raise failure
                retry_after = self._retry_after(response)
            # A transient failure: retry when attempts and the deadline allow. A plane that
            # cannot be connected to gets UNREACHABLE_WITHIN seconds: it is down and stays down.
            if attempt >= self.max_attempts:
                raise self._gave_up(failure, attempt, started)
            delay = self.backoff.delay(attempt, retry_after)
            give_up = deadline
            if isinstance(failure, UnreachableError):
                give_up = min(deadline, started + UNREACHABLE_WITHIN)
            if self._clock() + delay >= give_up:
                raise self._gave_up(failure, attempt, started, waiting=retry_after)
            self._trace(f"! retrying in {delay:.2f}s (attempt {attempt + 1}/{self.max_attempts}): {failure.message}")
            self._sleep(delay)

    @staticmethod
    def _write_headers(method: str, path: str, query: dict[str, Any], body: dict[str, Any] | None,
                       idempotency_key: str | None) -> dict[str, str]:
        """A write's Idempotency-Key (one per verb call, the same on every retry), and the plan's hash.

        Under `pipelinectl apply` the key is derived from the plan's hash and the request itself, so
        applying the same plan twice sends the same keys and the plane acts once; the hash travels
        as `Pipelinectl-Plan` for the plane's own audit trail.
        """
        plan = current_plan()
        if plan is None:
            return {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        import hashlib
        import json

        request = json.dumps([plan, method, path, query, body], sort_keys=True, default=str, separators=(",", ":"))
        derived = "plan-" + hashlib.sha256(request.encode()).hexdigest()[:40]
        return {"Idempotency-Key": idempotency_key or derived, "Pipelinectl-Plan": plan}

    # -- error shaping ------------------------------------------------------
    def _where(self) -> str:
        return f"control plane at {self.base_url} (context {self.connection.context})"

    @staticmethod
    def _reason(exc: Exception) -> str:
        """A short, secret-free reason for a transport failure."""
        text = str(exc) or type(exc).__name__
        lowered = text.lower()
        if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
            return "TLS handshake failed: " + text.split("]")[-1].strip(" ()")[:160]
        if "refused" in lowered or "errno 111" in lowered:
            return "connection refused"
        if "name or service" in lowered or "nodename" in lowered or "name resolution" in lowered or "errno -2" in lowered:
            return "host name not found"
        if "reset" in lowered:
            return "connection reset"
        return redact(text)[:160]

    @staticmethod
    def _transient(exc: TransportFailure) -> bool:
        """Worth retrying: refused, reset, closed mid-answer. Not: TLS, bad URL, DNS, a proxy's refusal."""
        lowered = str(exc).lower()
        if "certificate" in lowered or "ssl" in lowered or "name or service" in lowered or "name resolution" in lowered:
            return False
        return exc.kind in ("connect", "network", "protocol")

    def _unreachable(self, exc: Exception, attempt: int, started: float) -> PipelinectlError:
        reason = self._reason(exc)
        if reason.startswith("TLS"):
            hint = ("check the server certificate, or set the CA with "
                    f"'pipelinectl config set-context {self.connection.context} --ca-file FILE'")
            return UnavailableError(f"cannot reach {self._where()}: {reason}", hint=hint)
        kind = UnreachableError if reason in ("connection refused", "host name not found") else UnavailableError
        return kind(
            f"cannot reach {self._where()}: {reason}",
            hint="is the control plane running? check the url with 'pipelinectl config view'",
        )

    def _deadline_error(self, method: str, url: str, attempts: int, started: float) -> PipelinectlError:
        return DeadlineExceededError(
            f"{method} {url} did not complete within the {self.connection.timeout:g}s deadline "
            f"({attempts} attempt{'s' if attempts != 1 else ''}, context {self.connection.context})",
            hint="raise --timeout, or check the control plane's health",
        )

    def _gave_up(self, failure: PipelinectlError, attempts: int, started: float,
                 waiting: float | None = None) -> PipelinectlError:
        spent = self._clock() - started
        extra = f"gave up after {attempts} attempt{'s' if attempts != 1 else ''} in {spent:.1f}s"
        if waiting is not None:
            extra += f"; the plane asked to retry after {waiting:g}s, past the {self.connection.timeout:g}s deadline"
        failure.message = f"{failure.message} ({extra})"
        return failure

    def _api_error(self, response: Response, request_id: str) -> PipelinectlError:
        """The API's error body -> the error kind; a body that is not ours -> by HTTP status."""
        data: Any = None
        try:
            data = response.json()
        except ValueError:
            pass
        if isinstance(data, dict) and isinstance(data.get("code"), str) and isinstance(data.get("message"), str):
            cause = data.get("cause")
            err = from_canonical(
                data["code"], redact(data["message"]), detail=data.get("detail"), request_id=request_id,
                hint=redact(str(cause)) if cause else None,
            )
        else:
            cls = error_class_for_status(response.status_code)
            err = cls(f"HTTP {response.status_code} {response.reason_phrase} from {self._where()}",
                      request_id=request_id)
        if isinstance(err, UnauthenticatedError) and not err.hint:
            err.hint = (f"check the token source of context '{self.connection.context}' "
                        "with 'pipelinectl config view'")
        elif isinstance(err, PermissionDeniedError) and not err.hint:
            err.hint = "this token's role may not do this; ask for an operator or admin token"
        elif isinstance(err, StaleVersionError) and not err.hint:
            err.hint = "someone changed it since you read it; check 'pipelinectl status' and retry"
        return err

    @staticmethod
    def _retry_after(response: Response) -> float | None:
        value = response.headers.get("Retry-After")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None

        return max(0.0, (when - datetime.now(UTC)).total_seconds())

    def _decode(self, response: Response, method: str, url: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("content-type", "unknown content type")
            raise InternalError(
                f"{method} {url} answered HTTP {response.status_code} with {kind}, not JSON",
                hint="is the url pointing at a pipelinectl control plane?",
            ) from None

    # -- tracing ------------------------------------------------------------
    def _trace(self, line: str) -> None:
        if self.connection.trace is not None:
            self.connection.trace(redact(line))

    @staticmethod
    def _show_headers(headers: dict[str, str]) -> str:
        shown = []
        for key, value in headers.items():
            if key.lower() in _SECRET_HEADERS:
                scheme = value.split(" ", 1)[0] + " " if " " in value else ""
                value = scheme + REDACTED
            shown.append(f"{key}: {value}")
        return "{" + ", ".join(shown) + "}"

    @staticmethod
    def _show_url(url: str, query: dict[str, Any]) -> str:
        if not query:
            return url
        return url + "?" + "&".join(f"{k}={v}" for k, v in query.items())

    def _ms(self, since: float) -> str:
        return f"{(self._clock() - since) * 1000:.0f}ms"

    # -- shape helpers ------------------------------------------------------
    @staticmethod
    def _load(cls: type[Any], data: Any) -> Any:
        if not isinstance(data, dict):
            raise InternalError(f"the control plane answered {type(data).__name__} where a {cls.__name__} was expected")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError, KeyError) as exc:
            raise InternalError(f"the control plane's {cls.__name__} could not be read: {exc}") from None

    def _items(self, data: Any, cls: type[Any]) -> list[Any]:
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise InternalError(f"the control plane answered something other than a {cls.__name__}List")
        return [self._load(cls, item) for item in data["items"]]

    @staticmethod
    def _body(**fields: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in fields.items():
            if value is None or (value is False and key == "dry_run"):
                continue
            out[key] = format_time(value) if isinstance(value, datetime) else value
        return out

    def _stage_path(self, pipeline: str, stage: str) -> str:
        return f"/v1/pipelines/{_seg(pipeline)}/stages/{_seg(stage)}"

    # -- status -------------------------------------------------------------
    def server_version(self) -> str | None:
        """The plane's version from GET /v1/healthz (for `pipelinectl version`)."""
        data = self._call("GET", "/v1/healthz")
        return data.get("version") if isinstance(data, dict) else None

    def healthz(self) -> dict[str, Any]:
        data = self._call("GET", "/v1/healthz")
        return data if isinstance(data, dict) else {}

    def status(self, pipeline: str | None = None) -> list[Pipeline]:
        if pipeline:
            return [self._load(Pipeline, self._call("GET", f"/v1/pipelines/{_seg(pipeline)}"))]
        return self._items(self._call("GET", "/v1/pipelines"), Pipeline)

    def get_stage(self, pipeline: str, stage: str) -> Stage:
        return self._load(Stage, self._call("GET", self._stage_path(pipeline, stage)))

    # -- stage control ------------------------------------------------------
    def _stage_verb(self, verb: str, pipeline: str, stage: str, body: dict[str, Any],
                    expected_version: int | None) -> Stage:
        data = self._call("POST", f"{self._stage_path(pipeline, stage)}/{verb}", body=body,
                          if_match=expected_version)
        return self._load(Stage, data)

    def pause(self, pipeline: str, stage: str, *, until: datetime | None = None, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        return self._stage_verb("pause", pipeline, stage, self._body(until=until, dry_run=dry_run), expected_version)

    def resume(self, pipeline: str, stage: str, *, dry_run: bool = False,
               expected_version: int | None = None) -> Stage:
        return self._stage_verb("resume", pipeline, stage, self._body(dry_run=dry_run), expected_version)

    def drain(self, pipeline: str, stage: str, *, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        return self._stage_verb("drain", pipeline, stage, self._body(dry_run=dry_run), expected_version)

    def scale(self, pipeline: str, stage: str, parallelism: int, *, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        return self._stage_verb("scale", pipeline, stage, self._body(parallelism=parallelism, dry_run=dry_run),
                                expected_version)

    def limit(self, pipeline: str, stage: str, rate: RateLimit | None, *, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        body = {"rate": None} if rate is None else {"rate": rate.rate, "burst": rate.burst}
        return self._stage_verb("limit", pipeline, stage, {**body, **self._body(dry_run=dry_run)}, expected_version)

    def disable(self, pipeline: str, stage: str, reason: str, *, dry_run: bool = False,
                expected_version: int | None = None) -> Stage:
        return self._stage_verb("disable", pipeline, stage, self._body(reason=reason, dry_run=dry_run),
                                expected_version)

    def enable(self, pipeline: str, stage: str, *, dry_run: bool = False,
               expected_version: int | None = None) -> Stage:
        return self._stage_verb("enable", pipeline, stage, self._body(dry_run=dry_run), expected_version)

    # -- replay -------------------------------------------------------------
    def replay(self, request: ReplayRequest) -> ReplayJob:
        body = self._body(stage=request.stage, from_offset=request.from_offset, to_offset=request.to_offset,
                          from_time=request.from_time, to_time=request.to_time, dry_run=request.dry_run)
        return self._load(ReplayJob, self._call("POST", f"/v1/pipelines/{_seg(request.pipeline)}/replays", body=body))

    def replay_skipped(self, pipeline: str, stage: str, *, dry_run: bool = False) -> ReplayJob:
        data = self._call("POST", f"{self._stage_path(pipeline, stage)}/replay-skipped", body=self._body(dry_run=dry_run))
        return self._load(ReplayJob, data)

    def replay_list(self, pipeline: str) -> list[ReplayJob]:
        return self._items(self._call("GET", f"/v1/pipelines/{_seg(pipeline)}/replays"), ReplayJob)

    def replay_show(self, pipeline: str, job_id: str) -> ReplayJob:
        return self._load(ReplayJob, self._call("GET", f"/v1/pipelines/{_seg(pipeline)}/replays/{_seg(job_id)}"))

    def replay_cancel(self, pipeline: str, job_id: str) -> ReplayJob:
        path = f"/v1/pipelines/{_seg(pipeline)}/replays/{_seg(job_id)}/cancel"
        return self._load(ReplayJob, self._call("POST", path, body={}))

    # -- dead letters -------------------------------------------------------
    @staticmethod
    def _dlq_params(selection: DLQFilter) -> dict[str, Any]:
        return {
            "stage": selection.stage,
            "error_kind": selection.error_kind,
            "since": format_time(selection.since),
            "until": format_time(selection.until),
        }

    def _pages(self, path: str, params: dict[str, Any], page_size: int, cls: type[Any]) -> Iterator[Any]:
        """Follow next_page_token; one page in memory, and from the second on, the next one downloading.

        Reading ahead overlaps the plane's work on page N+1 with ours on page N (decoding,
        printing), which a sequential loop pays one after the other. It starts once the
        caller reads past the first page, so a listing that one page answers (a small
        --limit) asks for that page only; one stopped later may leave one page unread.
        Memory stays flat: two pages at most.
        """
        size = max(1, min(1000, int(page_size)))

        def fetch(token: str | None) -> Any:
            return self._call("GET", path, params={**params, "page_size": size, "page_token": token})

        def next_token(page: Any) -> str | None:
            return page.get("next_page_token") if isinstance(page, dict) else None

        data = fetch(None)
        yield from self._items(data, cls)
        token = next_token(data)
        if not token:
            return
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1, thread_name_prefix="pipelinectl-next-page")
        try:
            data = fetch(token)
            while True:
                token = next_token(data)
                upcoming = pool.submit(fetch, token) if token else None
                yield from self._items(data, cls)
                if upcoming is None:
                    return
                data = upcoming.result()
        finally:  # stopped early (--limit, a closed pipe): do not wait for a page nobody reads
            pool.shutdown(wait=False, cancel_futures=True)

    def dlq_list(self, selection: DLQFilter, *, page_size: int = 500) -> Iterator[DLQItem]:
        if selection.ids:  # the API lists by filter; explicit ids are fetched one by one
            return (self.dlq_show(selection.pipeline, item_id) for item_id in selection.ids)
        return self._pages(f"/v1/pipelines/{_seg(selection.pipeline)}/dlq", self._dlq_params(selection),
                           page_size, DLQItem)

    def dlq_count(self, selection: DLQFilter) -> int:
        if selection.ids:
            return len(selection.ids)
        data = self._call("GET", f"/v1/pipelines/{_seg(selection.pipeline)}/dlq",
                          params={**self._dlq_params(selection), "page_size": 1})
        if isinstance(data, dict) and isinstance(data.get("total"), int):
            return data["total"]
        return sum(1 for _ in self.dlq_list(selection))

    def dlq_show(self, pipeline: str, item_id: str) -> DLQItem:
        return self._load(DLQItem, self._call("GET", f"/v1/pipelines/{_seg(pipeline)}/dlq/{_seg(item_id)}"))

    def _dlq_bulk(self, action: str, selection: DLQFilter, dry_run: bool) -> BulkResult:
        if selection.is_empty():
            raise UsageError(f"dlq {action}: select items by ID, with --all, or with a filter")
        body = self._body(ids=list(selection.ids) or None, all=selection.all or None, stage=selection.stage,
                          error_kind=selection.error_kind, since=selection.since, until=selection.until,
                          dry_run=dry_run)
        data = self._call("POST", f"/v1/pipelines/{_seg(selection.pipeline)}/dlq/{action}", body=body)
        return self._load(BulkResult, data)

    def dlq_redrive(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult:
        return self._dlq_bulk("redrive", selection, dry_run)

    def dlq_purge(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult:
        return self._dlq_bulk("purge", selection, dry_run)

    # -- sagas --------------------------------------------------------------
    def saga_list(self, selection: SagaFilter, *, page_size: int = 200) -> Iterator[Saga]:
        if selection.query:
            raise UnsupportedError.verb(self.driver, "saga list --query",
                                        "filter with --status and --definition instead")
        params = {"status": selection.status, "definition": selection.definition}
        return self._pages(f"/v1/pipelines/{_seg(selection.pipeline)}/sagas", params, page_size, Saga)

    def saga_show(self, pipeline: str, saga_id: str) -> Saga:
        return self._load(Saga, self._call("GET", f"/v1/pipelines/{_seg(pipeline)}/sagas/{_seg(saga_id)}"))

    def _saga_verb(self, verb: str, pipeline: str, saga_id: str, body: dict[str, Any]) -> Saga:
        path = f"/v1/pipelines/{_seg(pipeline)}/sagas/{_seg(saga_id)}/{verb}"
        return self._load(Saga, self._call("POST", path, body=body))

    def saga_force_fail(self, pipeline: str, saga_id: str, reason: str, *, terminate: bool = False,
                        dry_run: bool = False) -> Saga:
        if terminate:
            raise UnsupportedError.verb(self.driver, "saga force-fail --terminate",
                                        "the reference control plane has no terminate")
        return self._saga_verb("force-fail", pipeline, saga_id, self._body(reason=reason, dry_run=dry_run))

    def saga_retry(self, pipeline: str, saga_id: str, reason: str | None = None, *, dry_run: bool = False,
                   options: dict[str, Any] | None = None) -> Saga:
        if options:
            raise UnsupportedError.verb(self.driver, "saga retry with engine options",
                                        f"unknown option(s): {', '.join(sorted(options))}")
        return self._saga_verb("retry", pipeline, saga_id, self._body(reason=reason, dry_run=dry_run))

    def saga_force_complete(self, pipeline: str, saga_id: str, reason: str, *, dry_run: bool = False) -> Saga:
        return self._saga_verb("force-complete", pipeline, saga_id, self._body(reason=reason, dry_run=dry_run))

    def saga_cancel(self, pipeline: str, saga_id: str, reason: str, *, dry_run: bool = False) -> Saga:
        return self._saga_verb("cancel", pipeline, saga_id, self._body(reason=reason, dry_run=dry_run))

    def saga_advance(self, pipeline: str, saga_id: str, step: str, reason: str, *, result: Any = None,
                     dry_run: bool = False) -> Saga:
        body = self._body(step=step, reason=reason, dry_run=dry_run)
        if result is not None:
            body["result"] = result  # as given: a JSON value, not a time to format
        return self._saga_verb("advance", pipeline, saga_id, body)

    # -- audit trail --------------------------------------------------------
    def audit_list(self, selection: AuditFilter, *, page_size: int = 500) -> Iterator[AuditEntry]:
        params = {"since": format_time(selection.since), "until": format_time(selection.until),
                  "actor": selection.actor, "target": selection.target, "verb": selection.verb,
                  "pipeline": selection.pipeline, "order": "newest" if selection.newest_first else None}
        return self._pages("/v1/audit", params, page_size, AuditEntry)

    def saga_batch(self, action: str, selection: SagaFilter, reason: str, *, dry_run: bool = False) -> Any:
        raise UnsupportedError.verb(self.driver, f"saga {action} --query",
                                    "select sagas one by one with 'saga list' instead")

    def saga_batch_show(self, pipeline: str, job_id: str) -> Any:
        raise UnsupportedError.verb(self.driver, "saga batch")
