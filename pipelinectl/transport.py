"""How every driver talks to a remote: the retry policy, deadlines, and a JSON-over-HTTP client.

One policy for all drivers, so an operator sees the same behaviour whatever engine answers:

- Reads retry transient failures (`UnavailableError` and its kinds) with exponential
  backoff and full jitter until the verb's deadline (`Connection.timeout`), honouring a
  server's `Retry-After`. Writes retry only when the caller says they are idempotent
  (they carry an idempotency key, a dedupe id, a request id the server checks).
- A plane that cannot be connected to at all (`UnreachableError`: refused, connect
  timeout, no route) is retried only within `UNREACHABLE_WITHIN` seconds: it is
  reported within two seconds, never after the whole deadline.
- Connecting has its own timeout (`Connection.connect_timeout`), separate from the
  deadline of the verb.

`HttpApi` is the shared client for engines with an HTTP API (Temporal's, RabbitMQ's
management API...). Drivers for other protocols use `retry()`/`aretry()` around their
own client calls, raising `pipelinectl.errors` kinds from one mapping function.
"""

from __future__ import annotations

import functools
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import (
    InternalError,
    PipelinectlError,
    UnavailableError,
    UnreachableError,
    UsageError,
    error_class_for_status,
)
from .redact import redact

if TYPE_CHECKING:
    import httpx

    from .plane import Connection

T = TypeVar("T")

UNREACHABLE_WITHIN = 1.5  # seconds of retrying a plane that cannot be connected to
DEFAULT_CONNECT_TIMEOUT = 1.5  # per connection attempt; a context's `connect_timeout` setting overrides


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**(n-1)))."""

    base: float = 0.2
    cap: float = 5.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        wait = random.uniform(0, min(self.cap, self.base * 2 ** max(0, attempt - 1)))
        return max(wait, retry_after) if retry_after else wait


DEFAULT_BACKOFF = Backoff()


def retryable(exc: BaseException) -> bool:
    """Worth another attempt: a transient kind, unless the driver marked it final (a bad certificate)."""
    return isinstance(exc, UnavailableError) and getattr(exc, "retryable", True)


class _Attempts:
    """The bookkeeping `retry` and `aretry` share: may we try again, and after how long?"""

    def __init__(self, timeout: float, backoff: Backoff, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.started = clock()
        self.deadline = self.started + timeout
        self.backoff = backoff
        self.attempt = 0

    def next_delay(self, exc: PipelinectlError) -> float | None:
        """Seconds to wait before the next attempt, or None to give up with `exc`."""
        if not retryable(exc):
            return None
        now = self.clock()
        wait = self.backoff.delay(self.attempt, getattr(exc, "retry_after", None))
        limit = self.deadline
        if isinstance(exc, UnreachableError):
            limit = min(limit, self.started + UNREACHABLE_WITHIN)
        return wait if now + wait < limit else None


def retry(call: Callable[[], T], *, timeout: float, what: str = "request", idempotent: bool = True,
          trace: Callable[[str], None] | None = None, backoff: Backoff = DEFAULT_BACKOFF,
          sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> T:
    """Run `call` (which raises PipelinectlError kinds) under the retry policy; return its result."""
    attempts = _Attempts(timeout, backoff, clock)
    while True:
        attempts.attempt += 1
        try:
            return call()
        except PipelinectlError as exc:
            wait = attempts.next_delay(exc) if idempotent else None
            if wait is None:
                raise
            if trace:
                trace(f"! {what}: retrying in {wait:.2f}s (attempt {attempts.attempt + 1}): {exc.message}")
            sleep(wait)


async def aretry(call: Callable[[], Awaitable[T]], *, timeout: float, what: str = "request",
                 idempotent: bool = True, trace: Callable[[str], None] | None = None,
                 backoff: Backoff = DEFAULT_BACKOFF, clock: Callable[[], float] = time.monotonic) -> T:
    """`retry` for asyncio clients (nats-py, aio-pika...)."""
    import asyncio

    attempts = _Attempts(timeout, backoff, clock)
    while True:
        attempts.attempt += 1
        try:
            return await call()
        except PipelinectlError as exc:
            wait = attempts.next_delay(exc) if idempotent else None
            if wait is None:
                raise
            if trace:
                trace(f"! {what}: retrying in {wait:.2f}s (attempt {attempts.attempt + 1}): {exc.message}")
            await asyncio.sleep(wait)


def connect_timeout(connection: Connection) -> float:
    """Seconds one connection attempt may take: the context's `connect_timeout`, else 1.5 s."""
    value = (connection.settings or {}).get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"context '{connection.context}': setting 'connect_timeout' must be a number of seconds") from None
    if not 0 < seconds <= 60:
        raise UsageError(f"context '{connection.context}': setting 'connect_timeout' must be between 0 and 60 seconds")
    return min(seconds, connection.timeout)


# -- TLS --------------------------------------------------------------------------------------------------


@functools.cache
def _ca_context(path: str) -> Any:
    import ssl

    return ssl.create_default_context(cafile=path)


def ssl_context(connection: Connection) -> Any:
    """The TLS verification a context asks for: its ca-file, the system's CAs, or (warned) none.

    Returns an `ssl.SSLContext`, or False when verification is explicitly turned off.
    """
    import os
    import ssl

    if connection.insecure_skip_tls_verify:
        return False
    if connection.ca_file:
        path = os.path.expanduser(connection.ca_file)
        try:
            return _ca_context(path)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise UsageError(f"context '{connection.context}': cannot load ca-file {path}: {reason}") from None
    return _default_context()


@functools.cache
def _default_context() -> Any:
    """The verifying context httpx would build (SSL_CERT_FILE, else SSL_CERT_DIR, else certifi's CAs), once per process."""
    import os
    import ssl

    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def tls_failure(text: str) -> bool:
    lowered = text.lower()
    return "certificate" in lowered or "ssl" in lowered or "tls" in lowered


# -- JSON over HTTP -----------------------------------------------------------------------------------------


def import_httpx() -> Any:
    """httpx without its command-line module (click, rich, pygments: ~70 ms we never use)."""
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    import httpx

    return httpx


def unsendable(method: str, exc: Exception) -> UsageError:
    """httpx refused to build the URL (an ID longer than any URL may be): the operator's input, nothing sent."""
    return UsageError(f"{method} request not sent: {redact(str(exc))[:100]}",
                      hint="an argument is too long or holds characters a URL cannot carry")


class HttpApi:
    """A JSON API of one engine over HTTP, bound to one connection.

    Owns TLS, auth, tracing (secrets redacted), timeouts, the retry policy and the
    mapping of HTTP failures to error kinds. Subclasses name the engine (`engine`) and
    override `auth_headers()` or `error_from()` for the engine's own auth and error body.
    """

    engine = "the server"
    hint_unreachable = "is the server running, and is the context's url its address?"

    def __init__(self, connection: Connection, *, base_url: str | None = None,
                 transport: httpx.BaseTransport | None = None, user_agent: str = "pipelinectl",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.connection = connection
        self.base_url = (base_url or connection.url).rstrip("/")
        self._transport = transport
        self._user_agent = user_agent
        self._sleep = sleep
        self._client: StdlibHttp | HttpxClient | None = None

    # -- plumbing ---------------------------------------------------------------------------------------
    def client(self) -> StdlibHttp | HttpxClient:
        """The stdlib client, or httpx for a proxy the environment names or a test's transport."""
        if self._client is None:
            conn = self.connection
            verify = ssl_context(conn) if self.base_url.startswith("https") else False
            headers = {"Accept": "application/json", "User-Agent": self._user_agent, **(conn.headers or {})}
            self._client = http_client(self.base_url, verify=verify, headers=headers, transport=self._transport)
        return self._client

    def auth_headers(self) -> dict[str, str]:
        """Bearer auth from the context's token, read only now."""
        token = self.connection.token() if self.connection.token else None
        return {"Authorization": f"Bearer {token}"} if token else {}

    def trace(self, line: str) -> None:
        if self.connection.trace:
            self.connection.trace(redact(line))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- requests -----------------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: Any = None, idempotent: bool | None = None, headers: dict[str, str] | None = None) -> Any:
        """Send one call and return its decoded JSON ({} for an empty body).

        Reads (GET/HEAD) retry by default; a write retries only with `idempotent=True`
        (it carries something the server deduplicates on).
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD")
        return retry(lambda: self._once(method, path, params, body, headers), timeout=self.connection.timeout,
                     what=f"{method} {path}", idempotent=idempotent, trace=self.trace, sleep=self._sleep)

    def _once(self, method: str, path: str, params: dict[str, Any] | None, body: Any,
              headers: dict[str, str] | None) -> Any:
        self.trace(f"> {method} {path}" + (f" {params}" if params else ""))
        started = time.monotonic()
        conn = self.connection
        try:
            response = self.client().request(method, self.base_url + path, params=params, json=body,
                                             headers={**self.auth_headers(), **(headers or {})},
                                             connect=connect_timeout(conn), read=min(conn.timeout, 30.0))
        except TransportFailure as exc:
            if exc.kind == "invalid-url":
                raise unsendable(method, exc) from None
            if exc.kind == "connect-timeout":
                raise UnreachableError(f"cannot reach {self.engine} at {self.base_url}: connect timed out",
                                       hint=self.hint_unreachable) from None
            if exc.kind == "timeout":
                raise UnavailableError(f"{self.engine} at {self.base_url} timed out ({exc.name})") from None
            if exc.kind == "connect":
                raise self._connect_error(exc) from None
            raise UnavailableError(f"cannot reach {self.engine} at {self.base_url}: {exc.name}",
                                   hint=self.hint_unreachable) from None
        self.trace(f"< {response.status_code} {method} {path} ({(time.monotonic() - started) * 1000:.0f} ms)")
        if response.status_code < 300:
            return self.decode(response, path)
        raise self.error_from(response)

    def _connect_error(self, exc: TransportFailure) -> PipelinectlError:
        text = str(exc)
        if tls_failure(text):
            err = UnavailableError(f"the TLS certificate of {self.base_url} is not trusted"
                                   if "verify" in text.lower() else f"TLS with {self.base_url} failed",
                                   hint="give the context its CA with --ca-file FILE (verification stays on)")
            err.retryable = False  # type: ignore[attr-defined]  # retrying cannot fix a certificate
            return err
        reason = "connection refused" if "refused" in text.lower() or "errno 111" in text.lower() else exc.name
        return UnreachableError(f"cannot reach {self.engine} at {self.base_url}: {reason}", hint=self.hint_unreachable)

    def decode(self, response: Response, path: str) -> Any:
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise InternalError(f"{self.engine} answered {path} with non-JSON content") from None

    def error_from(self, response: Response) -> PipelinectlError:
        """An HTTP failure as an error kind; override to read the engine's error body."""
        message = f"{self.engine} answered HTTP {response.status_code}"
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            text = data.get("message") or data.get("reason") or data.get("error")
            if isinstance(text, str) and text.strip():
                message = redact(text.strip().splitlines()[0])
        return self.with_retry_after(error_class_for_status(response.status_code)(message), response)

    @staticmethod
    def with_retry_after(err: PipelinectlError, response: Response) -> PipelinectlError:
        value = response.headers.get("Retry-After", "")
        if value.isdigit():
            err.retry_after = float(value)  # type: ignore[attr-defined]
        return err


# -- one client, two implementations --------------------------------------------------------------------


class TransportFailure(Exception):
    """A request that got no HTTP answer, in words both clients share.

    `kind` is one of: invalid-url (nothing sent), connect-timeout, timeout (reading or
    writing), connect (refused, DNS, TLS), network (reset, closed), protocol (the peer
    spoke something else), protocol-local (a request we cannot send), proxy, unsupported (a URL scheme
    neither client speaks). `str(self)` is the underlying reason, free of header values.
    """

    def __init__(self, kind: str, text: str, name: str | None = None) -> None:
        super().__init__(text)
        self.kind = kind
        self.name = name or _HTTPX_NAMES.get(kind, kind)  # the name httpx gives the failure, for messages


_HTTPX_NAMES = {"invalid-url": "InvalidURL", "connect-timeout": "ConnectTimeout", "timeout": "ReadTimeout",
                "connect": "ConnectError", "network": "ReadError", "protocol": "RemoteProtocolError",
                "protocol-local": "LocalProtocolError", "proxy": "ProxyError", "unsupported": "UnsupportedProtocol"}


class Response:
    """What a driver reads of an HTTP answer: status, reason, headers (case-insensitive get), body."""

    def __init__(self, status_code: int, reason_phrase: str, headers: Any, content: bytes) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        import json

        return json.loads(self.content)


def _query_value(value: Any) -> str:
    """A query value as httpx writes it (true/false, not True/False)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


MAX_URL_LENGTH = 65536  # httpx's limit: a longer URL is refused before anything is sent
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _StaleConnection(Exception):
    """A kept-alive connection turned out closed when used: nothing was answered on it."""


class StdlibHttp:
    """A small HTTP/1.1 client on `http.client`: kept-alive connections, connect and read timeouts.

    The CLI's requests are one-shot JSON calls, so importing httpx and httpcore (~70 ms of
    every command's start) buys nothing there. This client does what the http driver needs:
    one idle connection per thread's turn (a pool, so the page read ahead in a thread gets
    its own), a connection the server closed while idle is noticed before it is reused (as
    httpcore does) and never resent to; when the close crosses the request on the wire, a
    request that is safe to repeat (a read, or a write with an Idempotency-Key) goes once
    more on a fresh connection, as urllib3 does; TLS verified with the given context, no redirects
    followed, no body decompression (it asks for none). Proxies are not its business: the
    driver uses httpx when the environment names one for the URL.
    """

    def __init__(self, base_url: str, *, verify: Any, headers: dict[str, str]) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.verify = verify
        self.headers = headers
        self._idle: list[Any] = []

    def _connection(self, connect: float, *, fresh: bool = False) -> Any:
        import http.client

        while self._idle and not fresh:
            conn = self._idle.pop()
            if conn.sock is not None and not _readable(conn.sock):
                return conn
            conn.close()  # the server closed it (or sent something unasked): start afresh
        if self.scheme == "https":
            context = self.verify
            if context is False:
                import ssl

                context = ssl._create_unverified_context()  # noqa: S323 - the context turned verification off
            return http.client.HTTPSConnection(self.host, self.port, timeout=connect, context=context)
        if self.scheme != "http":
            raise TransportFailure("unsupported", f"Request URL has an unsupported protocol '{self.scheme}://'.")
        return http.client.HTTPConnection(self.host, self.port, timeout=connect)

    def request(self, method: str, url: str, *, params: dict[str, Any] | None, json: Any,
                headers: dict[str, str], connect: float, read: float) -> Response:
        from urllib.parse import urlencode, urlsplit

        if len(url) > MAX_URL_LENGTH:
            raise TransportFailure("invalid-url", "URL too long")
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if params:
            target += ("&" if parts.query else "?") + urlencode([(k, _query_value(v)) for k, v in params.items()])
        body = None
        sent = {**self.headers, **headers}
        if json is not None:
            import json as _json

            body = _json.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            sent["Content-Type"] = "application/json"
        conn = self._connection(connect)
        repeatable = conn.sock is not None and (method in _SAFE_METHODS or "Idempotency-Key" in sent)
        try:
            return self._exchange(conn, method, target, body, sent, connect, read, stale_retries=repeatable)
        except _StaleConnection:
            return self._exchange(self._connection(connect, fresh=True), method, target, body, sent, connect, read)

    def _exchange(self, conn: Any, method: str, target: str, body: bytes | None, sent: dict[str, str],
                  connect: float, read: float, *, stale_retries: bool = False) -> Response:
        """One request on `conn`; `stale_retries`: a reused connection found closed raises _StaleConnection."""
        import http.client

        connected = conn.sock is not None
        try:
            if not connected:
                conn.connect()
                connected = True
            conn.sock.settimeout(read)
            try:
                conn.request(method, target, body=body, headers=sent)
            except http.client.InvalidURL as exc:
                raise TransportFailure("invalid-url", str(exc)) from None
            except ValueError:  # a header value with a line break (never echoed: it may be a token)
                raise TransportFailure("protocol-local", "a request header has an invalid value") from None
            answer = conn.getresponse()
            content = answer.read()
        except TransportFailure:
            conn.close()
            raise
        except TimeoutError as exc:
            conn.close()
            raise TransportFailure("timeout" if connected else "connect-timeout", str(exc) or "timed out") from None
        except http.client.RemoteDisconnected as exc:
            conn.close()
            if stale_retries:
                raise _StaleConnection from None
            raise TransportFailure("protocol", f"Server disconnected without sending a response. ({exc})") from None
        except (http.client.HTTPException, UnicodeError) as exc:
            conn.close()
            raise TransportFailure("protocol", f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:
            conn.close()
            if stale_retries and isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                raise _StaleConnection from None
            raise TransportFailure("network" if connected else "connect", str(exc) or type(exc).__name__) from None
        if answer.will_close:
            conn.close()
        else:
            self._idle.append(conn)
        return Response(answer.status, answer.reason, answer.headers, content)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def _readable(sock: Any) -> bool:
    """An idle kept-alive socket with something to read: the server closed it (or misbehaves)."""
    import select

    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class HttpxClient:
    """The same calls through httpx: for a proxy the environment names, and for tests' mock transports."""

    def __init__(self, *, verify: Any, headers: dict[str, str], transport: Any = None) -> None:
        httpx = import_httpx()
        self._httpx = httpx
        self._client = httpx.Client(verify=verify, transport=transport, headers=headers,
                                    follow_redirects=False, trust_env=True)

    def request(self, method: str, url: str, *, params: dict[str, Any] | None, json: Any,
                headers: dict[str, str], connect: float, read: float) -> Any:
        httpx = self._httpx
        try:
            return self._client.request(method, url, params=params, json=json, headers=headers,
                                        timeout=httpx.Timeout(read, connect=connect))
        except (httpx.InvalidURL, httpx.TransportError) as exc:
            raise TransportFailure(self._kind(exc), str(exc) or type(exc).__name__, type(exc).__name__) from None

    def _kind(self, exc: Exception) -> str:
        httpx = self._httpx
        kinds = ((httpx.InvalidURL, "invalid-url"), (httpx.ConnectTimeout, "connect-timeout"),
                 (httpx.TimeoutException, "timeout"), (httpx.ProxyError, "proxy"),
                 (httpx.UnsupportedProtocol, "unsupported"), (httpx.LocalProtocolError, "protocol-local"),
                 (httpx.ConnectError, "connect"), (httpx.RemoteProtocolError, "protocol"),
                 (httpx.NetworkError, "network"))
        return next((kind for cls, kind in kinds if isinstance(exc, cls)), "other")

    def close(self) -> None:
        self._client.close()


def proxied(url: str) -> bool:
    """The environment names a proxy for `url` (HTTP(S)_PROXY / ALL_PROXY, minus NO_PROXY), as httpx honours."""
    import os

    names = {k.lower() for k, v in os.environ.items() if v and k.lower() in ("http_proxy", "https_proxy", "all_proxy")}
    if not names:
        return False
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass_environment

    proxies = getproxies()
    scheme = urlsplit(url).scheme
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    return not proxy_bypass_environment(urlsplit(url).hostname or "", proxies)


def http_client(url: str, *, verify: Any, headers: dict[str, str], transport: Any = None) -> StdlibHttp | HttpxClient:
    """The client for one remote: the stdlib one, unless a test's transport, a proxy or credentials
    in the URL (httpx sends them as Basic auth) ask for httpx."""
    if transport is not None or "@" in url.split("://", 1)[-1].split("/", 1)[0] or proxied(url):
        return HttpxClient(verify=verify, headers=headers, transport=transport)
    return StdlibHttp(url, verify=verify, headers=headers)
