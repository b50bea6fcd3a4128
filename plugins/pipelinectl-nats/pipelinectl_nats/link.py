"""One NATS connection driven from synchronous code, and the JetStream API as JSON.

The ControlPlane protocol is synchronous and nats-py is asyncio, so the link
owns a private event loop and runs one coroutine per call on it (`run`).
JetStream API calls go through `api()` as raw JSON: a consumer's configuration
then round-trips exactly as the server sent it (no client model drops fields),
and every failure maps to one PipelinectlError kind in one place (`_map`).
Idempotent calls (reads, publishes carrying a Nats-Msg-Id, deletes by
sequence) are retried with backoff until the verb's deadline, which is what
carries a redrive across a server restart.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import ssl
import threading
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from pipelinectl.plugin_api import (
    UNREACHABLE_WITHIN,
    Backoff,
    ConflictError,
    Connection,
    DeadlineExceededError,
    InternalError,
    NotFoundError,
    PermissionDeniedError,
    PipelinectlError,
    UnauthenticatedError,
    UnavailableError,
    UnreachableError,
    UsageError,
    aretry,
    connect_timeout,
    display_url,
    register_secret,
)

T = TypeVar("T")

HEADER_LINE = b"NATS/1.0"
RETRY_BACKOFF = Backoff(base=0.1, cap=2.0)


class ApiError(Exception):
    """A JetStream API error body: {"code", "err_code", "description"}."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.err_code = err_code
        self.description = description


# err_code values the driver reacts to (nats-server jetstream_errors_generated.go)
NO_MESSAGE_FOUND = 10037
STREAM_NOT_FOUND = 10059
CONSUMER_NOT_FOUND = 10014
JS_NOT_ENABLED = 10076



def decode_headers(raw: bytes | None) -> dict[str, str]:
    """Parse a NATS/1.0 header block; a repeated key keeps its values comma-joined."""
    if not raw or not raw.startswith(HEADER_LINE):
        return {}
    headers: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n")[1:]:
        if not line or ":" not in line:
            continue
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _quiet_asyncio_ssl_note() -> None:
    """Drop asyncio's 'eof_received() has no effect when using ssl' note, which nats-py triggers on TLS."""
    import logging

    logger = logging.getLogger("asyncio")
    if not any(getattr(f, "_pipelinectl_nats", False) for f in logger.filters):
        note = logging.Filter()
        note.filter = lambda record: "eof_received()" not in record.getMessage()  # type: ignore[method-assign]
        note._pipelinectl_nats = True  # type: ignore[attr-defined]
        logger.addFilter(note)


class Link:
    """The driver's connection: lazy, private loop, JSON API, error mapping."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.url = display_url(connection.url, default_scheme="nats")
        self.deadline = float(connection.timeout or 30.0)
        self.request_timeout = float(connection.settings.get("request_timeout", min(5.0, self.deadline)))
        self.connect_timeout = connect_timeout(connection)
        domain = connection.settings.get("domain")
        # a JetStream domain (leaf nodes, hubs) answers on $JS.<domain>.API
        self.api_prefix = f"$JS.{domain}.API" if domain else "$JS.API"
        self._loop = asyncio.new_event_loop()
        _quiet_asyncio_ssl_note()
        self._nc: Any = None
        self._last_error: BaseException | None = None
        self._auth_refused = False

    # -- running ------------------------------------------------------------
    def run(self, coro: Awaitable[T]) -> T:
        """Run one coroutine to completion; every failure leaves as a PipelinectlError.

        Ctrl-C cancels the verb's task instead of raising inside nats-py's reader, so the
        verb's `finally` blocks still have a working connection (temporary consumers are
        deleted now, not when the server's inactivity timer fires); then it is re-raised.
        A second Ctrl-C stops waiting for that clean-up.
        """
        task = self._loop.create_task(coro)  # type: ignore[arg-type]
        interrupted = False

        def on_interrupt() -> None:
            nonlocal interrupted
            if interrupted:
                raise KeyboardInterrupt
            interrupted = True
            task.cancel()

        handled = self._catch_interrupt(on_interrupt)
        try:
            result = self._loop.run_until_complete(task)
        except PipelinectlError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        except BaseException as exc:
            if interrupted or isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
                raise KeyboardInterrupt from None
            raise self._map(exc) from exc
        finally:
            if handled:
                self._loop.remove_signal_handler(signal.SIGINT)
        if interrupted:
            raise KeyboardInterrupt
        return result

    def _catch_interrupt(self, callback: Any) -> bool:
        """Route SIGINT to `callback` while a verb runs (main thread, default handler only)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return False  # ignored or owned by someone else: leave it alone
        try:
            self._loop.add_signal_handler(signal.SIGINT, callback)
        except (ValueError, RuntimeError, NotImplementedError):
            return False
        return True

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            if self._nc is not None and not self._nc.is_closed:
                self._loop.run_until_complete(asyncio.wait_for(self._nc.close(), 5))
        except Exception:  # closing a dead connection must not mask the verb's outcome
            pass
        finally:
            self._nc = None
            self._loop.close()

    def trace(self, line: str) -> None:
        if self.connection.trace:
            self.connection.trace(line)

    # -- connecting -----------------------------------------------------------
    def _auth_options(self) -> dict[str, Any]:
        """Credentials, read only now; with `settings.user`, the context's token is that user's password."""
        import os

        settings = self.connection.settings
        options: dict[str, Any] = {}
        secret = self.connection.token()
        if settings.get("password_env"):
            secret = os.environ.get(settings["password_env"]) or secret
        if settings.get("password_file"):
            try:
                with open(os.path.expanduser(settings["password_file"])) as fh:
                    secret = fh.read().strip()
            except OSError as exc:
                raise UsageError(f"cannot read password_file: {exc.strerror}") from None
        register_secret(secret)
        if settings.get("user"):
            options["user"] = settings["user"]
            options["password"] = secret or ""
        elif secret:
            options["token"] = secret
        if settings.get("creds_file"):
            options["user_credentials"] = settings["creds_file"]
        if settings.get("nkey_seed_file"):
            options["nkeys_seed"] = settings["nkey_seed_file"]
        return options

    def _tls(self) -> ssl.SSLContext | None:
        conn = self.connection
        wants_tls = any(u.strip().startswith("tls://") for u in conn.url.split(","))
        if not (wants_tls or conn.ca_file or conn.insecure_skip_tls_verify):
            return None
        context = ssl.create_default_context(cafile=conn.ca_file)
        if conn.insecure_skip_tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def nc(self) -> Any:
        if self._nc is not None:
            return self._nc
        import nats

        async def on_error(exc: Exception) -> None:
            self._last_error = exc
            if "Authorization Violation" in str(exc) or type(exc).__name__ == "AuthorizationError":
                self._auth_refused = True  # a reset that follows must not hide it
            self.trace(f"nats: {type(exc).__name__}: {exc}")

        async def on_disconnect() -> None:
            self.trace("nats: disconnected")

        async def on_reconnect() -> None:
            self.trace("nats: reconnected")

        servers = [u.strip() for u in self.connection.url.split(",") if u.strip()]
        self.trace(f"nats: connecting to {self.url}")
        client = nats.NATS()
        connecting = asyncio.ensure_future(client.connect(
            servers=servers,
            name="pipelinectl",
            connect_timeout=self.connect_timeout,
            # Fail fast on the first connect (each server twice), then keep
            # reconnecting for as long as a verb's deadline allows (set below).
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            tls=self._tls(),
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            **self._auth_options(),
        ))
        # nats-py can keep retrying a server that fails the TLS handshake: bound the first
        # connect (an unreachable server is reported within UNREACHABLE_WITHIN; each further
        # server of a cluster list gets as long), and stop at once on a refusal that no
        # retry will fix.
        give_up = time.monotonic() + min(self.deadline, max(UNREACHABLE_WITHIN, self.connect_timeout) * len(servers))
        while not connecting.done():
            if self._auth_refused or isinstance(self._last_error, ssl.SSLError) or time.monotonic() > give_up:
                connecting.cancel()
                with contextlib.suppress(BaseException):
                    await connecting
                with contextlib.suppress(BaseException):
                    await client.close()
                raise self._connect_failure()
            await asyncio.sleep(0.02)
        connecting.result()
        nc = client
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = 0.5
        self._nc = nc
        return nc

    # -- requests ---------------------------------------------------------------
    async def jetstream(self) -> Any:
        """nats-py's JetStream context on the same API prefix (used for pull fetches)."""
        return (await self.nc()).jetstream(prefix=self.api_prefix)

    async def api(self, subject: str, body: dict[str, Any] | None = None, *, retry: bool = True) -> dict[str, Any]:
        """One JetStream API request ($JS.API.<subject>); the decoded answer or an ApiError."""
        payload = json.dumps(body).encode() if body is not None else b""
        full = f"{self.api_prefix}.{subject}"

        async def once() -> dict[str, Any]:
            nc = await self.nc()
            self.trace(f"nats: > {full} {len(payload)}B")
            msg = await nc.request(full, payload, timeout=self.request_timeout)
            answer = json.loads(msg.data or b"{}")
            error = answer.get("error")
            if error:
                self.trace(f"nats: < {full} error {error.get('code')}/{error.get('err_code')}")
                raise ApiError(int(error.get("code", 500)), int(error.get("err_code", 0)),
                               str(error.get("description", "unknown error")))
            return answer

        return await (self.retrying(once, what=full) if retry else once())

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> dict[str, Any]:
        """Publish into a stream and wait for its ack; retried (safe: callers set Nats-Msg-Id)."""

        async def once() -> dict[str, Any]:
            nc = await self.nc()
            msg = await nc.request(subject, data, timeout=self.request_timeout, headers=headers)
            answer = json.loads(msg.data or b"{}")
            error = answer.get("error")
            if error:
                raise ApiError(int(error.get("code", 500)), int(error.get("err_code", 0)),
                               str(error.get("description", "unknown error")))
            if "seq" not in answer:
                raise InternalError(f"nats: publish to '{subject}' was not acknowledged by a stream")
            return answer

        return await self.retrying(once, what=f"publish {subject}")

    async def retrying(self, call: Any, *, what: str) -> Any:
        """Retry transient failures under the shared policy until the deadline.

        A JetStream 503 and nats-py's transient errors are retried; any other API error
        leaves as the ApiError it is, for the caller to react to (a missing consumer...).
        """
        import nats.errors as ne

        transient: tuple[type[BaseException], ...] = (
            asyncio.TimeoutError, ne.TimeoutError, ne.NoRespondersError, ne.ConnectionClosedError,
            ne.StaleConnectionError, ne.ConnectionReconnectingError, ne.OutboundBufferLimitError,
            ConnectionError,
        )

        async def attempt() -> Any:
            try:
                return await call()
            except ApiError as exc:
                if exc.code != 503:
                    raise
                raise api_error(exc, f"nats: {what}") from exc
            except transient as exc:
                if isinstance(exc, ne.NoServersError):
                    raise
                raise self._map(exc) from exc

        return await aretry(attempt, timeout=self.deadline, what=f"nats: {what}", trace=self.trace,
                            backoff=RETRY_BACKOFF)

    # -- errors -------------------------------------------------------------
    def _connect_failure(self) -> PipelinectlError:
        import nats.errors as ne

        return self._map(ne.NoServersError())

    def _map(self, exc: BaseException) -> PipelinectlError:
        import nats.errors as ne

        last = self._last_error
        if isinstance(exc, ApiError):
            return api_error(exc)
        if isinstance(exc, ValueError):
            return UsageError(f"nats: {exc}")
        if isinstance(exc, ne.AuthorizationError) or self._auth_refused:
            return UnauthenticatedError(f"the nats server at {self.url} refused the credentials",
                                        hint="check the context's token, user/password, creds_file or nkey_seed_file")
        if "Permissions Violation" in str(last or ""):
            return PermissionDeniedError(f"nats: {last}")
        if isinstance(exc, ssl.SSLError) or isinstance(last, ssl.SSLError) or isinstance(
            exc, (ne.SecureConnFailedError, ne.SecureConnRequiredError, ne.SecureConnWantedError)
        ):
            return UnavailableError(f"TLS with the nats server at {self.url} failed: {last or exc}",
                                    hint="set the context's ca_file, or use a tls:// url")
        if isinstance(exc, ne.NoServersError):
            return UnreachableError(f"cannot reach a nats server at {self.url}: {last or 'connection refused'}")
        if isinstance(exc, ne.NoRespondersError):
            return UnavailableError(f"no JetStream answer at {self.url}",
                                    hint="is JetStream enabled (nats-server -js) and this account allowed to use it?")
        if isinstance(exc, (asyncio.TimeoutError, ne.TimeoutError)):
            return DeadlineExceededError(f"the nats server at {self.url} did not answer in time")
        if isinstance(exc, (ne.Error, ConnectionError, OSError)):
            return UnavailableError(f"nats connection to {self.url} failed: {type(exc).__name__}: {exc}")
        return InternalError(f"nats driver: unexpected {type(exc).__name__}: {exc}")


def api_error(exc: ApiError, what: str | None = None) -> PipelinectlError:
    """Map a JetStream API error to the tool's kinds by its HTTP-like code."""
    text = f"{what}: {exc.description}" if what else f"nats: {exc.description}"
    if exc.code == 404:
        return NotFoundError(text)
    if exc.code == 400:
        return UsageError(text)
    if exc.code in (401, 403):
        return PermissionDeniedError(text)
    if exc.code == 409:
        return ConflictError(text)
    if exc.code == 503:
        return UnavailableError(text)
    return InternalError(text)


def b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""
