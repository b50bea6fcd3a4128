"""One Redis connection for a verb, and every Redis failure mapped to an error kind in ONE place (`map_error`).

redis-py's own retries are turned off: the shared policy (`retry`) retries
transient failures until the verb's deadline, and an unreachable server is
reported within two seconds (`UnreachableError`). Only calls that are safe to
repeat go through `call(..., idempotent=True)`: reads, and the pipelinectl
scripts, which check the state they act on before changing it (a script that
ran before the answer was lost finds nothing left to do the second time).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from pipelinectl.plugin_api import (
    Backoff,
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
    connect_timeout,
    display_url,
    register_secret,
    retry,
    ssl_context,
)

T = TypeVar("T")

RETRY_BACKOFF = Backoff(base=0.1, cap=2.0)
DEFAULT_REQUEST_TIMEOUT = 5.0



def tls_options(connection: Connection) -> dict[str, Any]:
    """redis-py's TLS options for a context: verified by default, the context's ca-file, or (warned) none.

    `ssl_context()` validates the context first (an unreadable ca-file is a usage error);
    redis-py builds its own SSLContext from the same choices.
    """
    if not connection.url.startswith("rediss://"):
        return {}
    verify = ssl_context(connection) is not False
    options: dict[str, Any] = {"ssl": True}
    if not verify:
        options.update(ssl_cert_reqs="none", ssl_check_hostname=False)
        return options
    options.update(ssl_cert_reqs="required", ssl_check_hostname=True)
    if connection.ca_file:
        options["ssl_ca_certs"] = os.path.expanduser(connection.ca_file)
    settings = connection.settings or {}
    if settings.get("client_cert_file"):  # servers with tls-auth-clients yes
        options["ssl_certfile"] = os.path.expanduser(settings["client_cert_file"])
        options["ssl_keyfile"] = os.path.expanduser(settings.get("client_key_file") or settings["client_cert_file"])
    return options


def credentials(connection: Connection) -> dict[str, Any]:
    """username/password, read only now: the context's token is the password (`user` setting for ACL users).

    A password in the URL is used too (and redacted everywhere); `password_env` / `password_file`
    settings name other places to read it from.
    """
    settings = connection.settings or {}
    split = urlsplit(connection.url)
    secret = connection.token() if connection.token else None
    if settings.get("password_env"):
        secret = os.environ.get(str(settings["password_env"])) or secret
    if settings.get("password_file"):
        try:
            with open(os.path.expanduser(str(settings["password_file"]))) as fh:
                secret = fh.read().strip()
        except OSError as exc:
            raise UsageError(f"context '{connection.context}': cannot read password_file: {exc.strerror}") from None
    if secret is None and split.password:
        secret = unquote(split.password)
    user = settings.get("user") or (unquote(split.username) if split.username else None)
    register_secret(secret)
    options: dict[str, Any] = {}
    if secret:
        options["password"] = secret
    if user:
        options["username"] = user
    return options


def _db(connection: Connection) -> int:
    path = urlsplit(connection.url).path.strip("/")
    if not path:
        return int((connection.settings or {}).get("db", 0))
    if not path.isdigit():
        raise UsageError(f"context '{connection.context}': the URL path must be a database number, got '/{path}'")
    return int(path)


class Link:
    """A lazily opened redis-py client bound to one context, and the retry policy around it."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.url = display_url(connection.url)
        self.deadline = float(connection.timeout or 30.0)
        settings = connection.settings or {}
        try:
            self.request_timeout = float(settings.get("request_timeout", min(DEFAULT_REQUEST_TIMEOUT, self.deadline)))
        except (TypeError, ValueError):
            raise UsageError(f"context '{connection.context}': setting 'request_timeout' must be a number of seconds") from None
        self._client: Any = None
        self._scripts: dict[str, Any] = {}

    def trace(self, line: str) -> None:
        if self.connection.trace:
            self.connection.trace(line)

    def client(self) -> Any:
        if self._client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            split = urlsplit(self.connection.url)
            if split.scheme not in ("redis", "rediss"):
                raise UsageError(f"context '{self.connection.context}': the redis driver needs a redis:// or rediss:// URL")
            self._client = redis.Redis(
                host=split.hostname or "127.0.0.1",
                port=split.port or 6379,
                db=_db(self.connection),
                socket_connect_timeout=connect_timeout(self.connection),
                socket_timeout=self.request_timeout,
                retry=Retry(NoBackoff(), 0),  # the shared policy retries, not redis-py
                decode_responses=False,  # payloads are bytes; names are decoded where read
                **credentials(self.connection),
                **tls_options(self.connection),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing a dead connection must not mask the verb's outcome
                pass
            self._client = None

    # -- calls ----------------------------------------------------------------------------------------
    def call(self, fn: Callable[[Any], T], *, what: str, idempotent: bool = True) -> T:
        """Run `fn(client)` under the retry policy; every failure leaves as a PipelinectlError."""

        def once() -> T:
            try:
                return fn(self.client())
            except PipelinectlError:
                raise
            except Exception as exc:
                raise self.map_error(exc, what) from exc

        return retry(once, timeout=self.deadline, what=f"redis: {what}", idempotent=idempotent,
                     trace=self.trace, backoff=RETRY_BACKOFF)

    def script(self, name: str, source: str) -> Any:
        """A registered Lua script (EVALSHA, loaded again by redis-py when the server lost it)."""
        if name not in self._scripts:
            self._scripts[name] = self.client().register_script(source)
        return self._scripts[name]

    def run_script(self, name: str, source: str, keys: list[str], args: list[Any], *, what: str) -> Any:
        """Run one pipelinectl script; each checks what it acts on first, so a retry never acts twice."""
        script = self.script(name, source)
        return self.call(lambda client: script(keys=keys, args=args, client=client), what=what)

    def run_scripts(self, name: str, source: str, calls: list[tuple[list[str], list[Any]]], *, what: str) -> list[Any]:
        """Many runs of one script in one round trip (each run atomic on its own, none inside a transaction)."""
        if not calls:
            return []
        script = self.script(name, source)

        def batch(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for keys, args in calls:
                script(keys=keys, args=args, client=pipe)
            return pipe.execute()

        return self.call(batch, what=what)

    # -- errors: the one mapping -----------------------------------------------------------------------
    def map_error(self, exc: BaseException, what: str = "request") -> PipelinectlError:
        import ssl

        import redis.exceptions as rx

        text = str(exc)
        upper = text.upper()
        where = f"redis at {self.url}"
        if isinstance(exc, rx.AuthenticationError) or upper.startswith(("WRONGPASS", "NOAUTH", "INVALID USERNAME")) \
                or "AUTHENTICATION REQUIRED" in upper or "INVALID PASSWORD" in upper:
            return UnauthenticatedError(f"the {where} refused the credentials",
                                        hint="check the context's token (the password) and its 'user' setting")
        if upper.startswith("NOPERM") or isinstance(exc, getattr(rx, "NoPermissionError", ())):
            return PermissionDeniedError(f"redis: {what}: this user may not run that command or touch that key "
                                         f"({text.split(' ', 1)[-1] if ' ' in text else text})")
        cause = exc.__cause__ or exc.__context__
        if isinstance(exc, ssl.SSLError) or isinstance(cause, ssl.SSLError) or "SSL" in text or "CERTIFICATE" in upper:
            err = UnavailableError(f"TLS with the {where} failed: {text}",
                                   hint="set the context's ca-file to the CA that signed the server's certificate")
            err.retryable = False  # type: ignore[attr-defined]
            return err
        if isinstance(exc, rx.BusyLoadingError) or upper.startswith(("LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN")):
            return UnavailableError(f"the {where} cannot serve now: {text}")
        if isinstance(exc, rx.ReadOnlyError) or upper.startswith("READONLY"):
            return UnavailableError(f"the {where} is a read-only replica; point the context at the primary",
                                    hint="pipelinectl writes (pause, redrive...) need the primary")
        if isinstance(exc, rx.TimeoutError):
            if "connecting" in text.lower():  # "Timeout connecting to server": nothing answered at all
                return UnreachableError(f"cannot reach the {where}: connect timed out",
                                        hint="is redis-server running, and is the context's url its address?")
            return DeadlineExceededError(f"the {where} did not answer in time ({what})")
        if isinstance(exc, rx.ConnectionError):
            if "connecting to" in text:  # redis-py's "Error N connecting to host:port. Reason."
                return UnreachableError(f"cannot reach the {where}: {self._short(text)}",
                                        hint="is redis-server running, and is the context's url its address?")
            hint = ("is it a TLS port? then the context's url is rediss://..." if "reset by peer" in text
                    or "closed by server" in text else None)
            return UnavailableError(f"connection to the {where} failed: {self._short(text)}", hint=hint)
        if isinstance(exc, rx.ResponseError):
            if upper.startswith("NOGROUP"):
                return NotFoundError(f"redis: {what}: no such stream or consumer group")
            if upper.startswith("WRONGTYPE"):
                return UsageError(f"redis: {what}: the key is not a stream")
            if upper.startswith("NOSCRIPT"):
                return UnavailableError(f"redis: {what}: the script cache was flushed")
            return InternalError(f"redis: {what}: the server answered: {text}")
        if isinstance(exc, (OSError, rx.RedisError)):
            return UnavailableError(f"connection to the {where} failed: {self._short(text)}")
        return InternalError(f"redis driver: unexpected {type(exc).__name__} in {what}: {text}")

    @staticmethod
    def _short(text: str) -> str:
        return text.strip().rstrip(".")[:300]
