"""The driver's reach into a Celery deployment: the Redis broker, the result backend, and the workers.

Three channels, one error mapping (`Link.map`):
- redis-py clients on the broker (queue depths, worker discovery, pipelinectl's own
  markers, redrive publishes) and on the result backend (failure records);
- Celery's control API (`app.control`, broadcasts over the broker's pidbox exchange) for
  inspect/control commands to the workers.

Every call is bounded by the verb's deadline (`Connection.timeout`): a broadcast waits for
replies at most `reply_timeout` seconds (1 s unless the context sets it) and never past the
deadline. An unreachable broker is reported within two seconds: the first thing any verb
does is a Redis PING with the shared connect timeout, retried only within UNREACHABLE_WITHIN.
Celery, kombu and redis-py are imported here, inside the methods that use them, so the
driver module stays cheap to import.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from pipelinectl.plugin_api import (
    Backoff,
    Connection,
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
)

T = TypeVar("T")

SCHEMES = ("redis", "rediss")
BINDINGS_KEY = "_kombu.binding.{exchange}.pidbox"  # kombu's Redis transport: the workers' control queues
BINDING_SEP = "\x06\x16"
DEFAULT_REPLY_TIMEOUT = 1.0
READ_COMMANDS = frozenset({"ping", "active_queues", "stats", "active", "reserved", "scheduled", "registered",
                           "revoked", "query_task", "report", "clock", "conf"})
RETRY_BACKOFF = Backoff(base=0.1, cap=1.0)



def check_url(url: str, what: str) -> None:
    split = urlsplit(url)
    if split.scheme not in SCHEMES:
        raise UsageError(f"{what} '{display_url(url)}' is not a Redis URL",
                         hint="use redis://HOST:PORT/DB or rediss:// (TLS); other brokers are not supported")
    path = split.path.strip("/")
    if path and not path.isdigit():
        raise UsageError(f"{what} '{display_url(url)}': the path must be a database number (redis://HOST:PORT/0)")


def float_setting(connection: Connection, name: str, default: float, low: float, high: float) -> float:
    value = connection.settings.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"context '{connection.context}': setting '{name}' must be a number") from None
    if not low <= number <= high:
        raise UsageError(f"context '{connection.context}': setting '{name}' must be between {low:g} and {high:g}")
    return number


class Link:
    """Clients for one context, created on first use; deadline-bounded calls; errors mapped in one place."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        settings = connection.settings
        self.broker_url = connection.url
        self.backend_url = str(settings.get("result_backend") or connection.url)
        check_url(self.broker_url, "broker URL")
        check_url(self.backend_url, "result_backend")
        self.url = display_url(self.broker_url)
        self.backend_display = display_url(self.backend_url)
        self.connect_timeout = connect_timeout(connection)
        self.control_exchange = str(settings.get("control_exchange") or "celery")  # Celery's control_exchange
        self.reply_timeout = float_setting(connection, "reply_timeout", DEFAULT_REPLY_TIMEOUT, 0.05, 60)
        self.socket_timeout = float_setting(connection, "socket_timeout", 5.0, 0.1, 300)
        self.deadline_at = time.monotonic() + float(connection.timeout or 30.0)
        self._broker: Any = None
        self._backend: Any = None
        self._app: Any = None
        self._kombu: Any = None
        self._checked = False

    # -- deadlines --------------------------------------------------------------------------------------
    def start_verb(self) -> None:
        """A verb begins: its deadline is --timeout from now (a driver object may serve several verbs)."""
        self.deadline_at = time.monotonic() + float(self.connection.timeout or 30.0)

    def remaining(self) -> float:
        return max(0.0, self.deadline_at - time.monotonic())

    def reply_wait(self) -> float:
        """How long a broadcast waits for replies: reply_timeout, never past the verb's deadline."""
        left = self.remaining()
        if left <= 0.05:
            raise UnavailableError(f"celery: the deadline ({self.connection.timeout:g}s) passed before the workers "
                                   "could be asked", hint="raise --timeout")
        return min(self.reply_timeout, left)

    def trace(self, line: str) -> None:
        if self.connection.trace:
            self.connection.trace(line)

    # -- credentials and TLS ------------------------------------------------------------------------------
    def _secret(self) -> str | None:
        secret = self.connection.token()
        register_secret(secret)
        return secret

    def _redis_kwargs(self, url: str) -> dict[str, Any]:
        """Keyword arguments for redis-py: credentials (URL's own, else the context's), timeouts, TLS."""
        split = urlsplit(url)
        kwargs: dict[str, Any] = {
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": min(self.socket_timeout, float(self.connection.timeout or 30.0)),
            "retry_on_timeout": False,
            "health_check_interval": 0,
        }
        if split.password:
            register_secret(unquote(split.password))
        else:
            secret = self._secret()
            if secret:
                kwargs["password"] = secret
            user = self.connection.settings.get("user")
            if user:
                kwargs["username"] = str(user)
        if split.scheme == "rediss":
            kwargs.update(self._tls_kwargs())
        return kwargs

    def _tls_kwargs(self) -> dict[str, Any]:
        conn = self.connection
        if conn.insecure_skip_tls_verify:
            return {"ssl_cert_reqs": "none", "ssl_check_hostname": False}
        options: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
        if conn.ca_file:
            import os

            options["ssl_ca_certs"] = os.path.expanduser(conn.ca_file)
        return options

    # -- clients ------------------------------------------------------------------------------------------
    def _redis(self, url: str) -> Any:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # no retries inside redis-py: the shared policy (self.call) decides, under the verb's deadline
        return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **self._redis_kwargs(url))

    def probe(self, url: str, what: str) -> None:
        """A plain TCP connect first: an unreachable server is reported within two seconds, before
        redis-py (slow to import on a loaded machine) is even loaded."""
        import socket

        split = urlsplit(url)
        address = (split.hostname or "localhost", split.port or 6379)

        def attempt() -> None:
            try:
                socket.create_connection(address, timeout=self.connect_timeout).close()
            except OSError as exc:
                reason = "connect timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
                raise UnreachableError(f"celery: cannot reach {what} ({reason})") from None

        try:
            retry(attempt, timeout=max(0.1, self.remaining()), what=f"celery: {what}", trace=self.trace,
                  backoff=RETRY_BACKOFF)
        except UnreachableError as exc:
            exc.retryable = False  # its own two seconds are spent: a caller's retry must not start them again
            raise

    def broker(self) -> Any:
        """redis-py on the broker, after a PING (so an unreachable broker fails here, within two seconds)."""
        if self._broker is None:
            self.probe(self.broker_url, f"broker {self.url}")
            self._broker = self._redis(self.broker_url)
        if not self._checked:
            self.call(self._broker.ping, what=f"broker {self.url}")
            self._checked = True
        return self._broker

    def backend(self) -> Any:
        if self._backend is None:
            if self.backend_url == self.broker_url:
                self._backend = self.broker()
            else:
                self.probe(self.backend_url, f"result backend {self.backend_display}")
                self._backend = self._redis(self.backend_url)
                self.call(self._backend.ping, what=f"result backend {self.backend_display}")
        return self._backend

    def app(self) -> Any:
        """A Celery app bound to the broker, for its control API and task-message format; never a worker."""
        if self._app is None:
            self.broker()  # reachable and authenticated first: Celery itself would retry for long
            from celery import Celery

            app = Celery(str(self.connection.settings.get("app") or "pipelinectl"), set_as_current=False)
            app.conf.update(
                broker_url=self._bare(self.broker_url),
                broker_connection_timeout=self.connect_timeout,
                broker_connection_retry=False,
                broker_connection_max_retries=0,
                broker_transport_options={"socket_timeout": self.socket_timeout,
                                          "socket_connect_timeout": self.connect_timeout,
                                          "max_connections": 4},
                control_exchange=self.control_exchange,
                accept_content=["json"],
                task_serializer="json",
            )
            self._app = app
        return self._app

    def kombu(self) -> Any:
        """The kombu connection the control broadcasts use (credentials passed apart from the URL)."""
        if self._kombu is None:
            from kombu import Connection as KombuConnection

            split = urlsplit(self.broker_url)
            kwargs: dict[str, Any] = {"connect_timeout": self.connect_timeout,
                                      "transport_options": {"socket_timeout": self.socket_timeout,
                                                            "socket_connect_timeout": self.connect_timeout,
                                                            "max_connections": 4}}
            if split.password:
                kwargs["password"] = unquote(split.password)
                if split.username:
                    kwargs["userid"] = unquote(split.username)
            else:
                secret = self._secret()
                if secret:
                    kwargs["password"] = secret
                if self.connection.settings.get("user"):
                    kwargs["userid"] = str(self.connection.settings["user"])
            if split.scheme == "rediss":
                kwargs["ssl"] = self._kombu_ssl()
            self.app()
            self._kombu = KombuConnection(self._bare(self.broker_url), **kwargs)
        return self._kombu

    def _kombu_ssl(self) -> dict[str, Any]:
        import ssl

        conn = self.connection
        if conn.insecure_skip_tls_verify:
            return {"ssl_cert_reqs": ssl.CERT_NONE, "ssl_check_hostname": False}
        options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        if conn.ca_file:
            import os

            options["ssl_ca_certs"] = os.path.expanduser(conn.ca_file)
        return options

    @staticmethod
    def _bare(url: str) -> str:
        """The URL without user info: credentials travel as arguments, never inside a URL that might be shown."""
        split = urlsplit(url)
        host = split.hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        if split.port:
            host = f"{host}:{split.port}"
        return urlunsplit((split.scheme, host, split.path, split.query, ""))

    def close(self) -> None:
        for closing in (self._kombu, self._broker, self._backend):
            if closing is None:
                continue
            try:
                closing.close()
            except Exception:  # closing a dead connection must not mask the verb's outcome
                pass
        self._kombu = self._broker = self._backend = None

    # -- calls ----------------------------------------------------------------------------------------
    def call(self, fn: Callable[[], T], *, what: str, idempotent: bool = True) -> T:
        """One Redis call under the shared retry policy, its failures mapped to error kinds."""

        def attempt() -> T:
            try:
                return fn()
            except PipelinectlError:
                raise
            except Exception as exc:
                raise self.map(exc, what) from exc

        return retry(attempt, timeout=max(0.1, self.remaining()), what=f"celery: {what}", idempotent=idempotent,
                     trace=self.trace, backoff=RETRY_BACKOFF)

    def broadcast(self, command: str, *, destination: list[str] | None, arguments: dict[str, Any] | None = None,
                  reply: bool = True) -> list[dict[str, Any]]:
        """One control command to the workers; the list of {node: answer} replies that came in time.

        Inspect commands (reads) are retried under the shared policy on a fresh connection; a
        control command (a change) is sent once: a lost reply must not make a pool grow twice.
        """

        def once() -> list[dict[str, Any]]:
            self.trace(f"celery: > {command} {sorted(destination or [])} {arguments or {}}")
            wait = self.reply_wait()
            app = self.app()
            try:
                replies = app.control.broadcast(command, arguments=arguments or {}, destination=destination,
                                                connection=self.kombu(), reply=reply, timeout=wait,
                                                limit=len(destination) if destination else None)
            except PipelinectlError:
                raise
            except Exception as exc:
                self._drop_kombu()  # a broken connection is not reused: the next attempt connects anew
                raise self.map(exc, f"control command '{command}'") from exc
            replies = list(replies or [])
            self.trace(f"celery: < {command} {len(replies)} replies")
            return replies

        return retry(once, timeout=max(0.1, self.remaining()), what=f"celery: {command}",
                     idempotent=command in READ_COMMANDS, trace=self.trace, backoff=RETRY_BACKOFF)

    def _drop_kombu(self) -> None:
        if self._kombu is not None:
            try:
                self._kombu.release()
            except Exception:  # it is broken already
                pass
            self._kombu = None

    def by_node(self, command: str, destination: list[str], **arguments: Any) -> dict[str, Any]:
        """A broadcast's replies as {node: answer} (a node that did not answer in time is absent)."""
        answers: dict[str, Any] = {}
        for item in self.broadcast(command, destination=destination, arguments=arguments):
            if isinstance(item, dict):
                answers.update(item)
        return answers

    def worker_candidates(self) -> list[str]:
        """Workers bound to the pidbox exchange (alive, or dead ones whose binding is not swept yet)."""
        key = BINDINGS_KEY.format(exchange=self.control_exchange)
        suffix = f".{self.control_exchange}.pidbox"
        members = self.call(lambda: self.broker().smembers(key), what="worker discovery")
        nodes = []
        for member in members or ():
            text = member.decode() if isinstance(member, bytes) else str(member)
            queue = text.split(BINDING_SEP)[-1]
            if queue.endswith(suffix):
                nodes.append(queue[: -len(suffix)])
        return sorted(set(nodes))

    def online_workers(self) -> list[str]:
        """The workers that answer a ping now (asked by name, so the wait ends when all have answered)."""
        candidates = self.worker_candidates()
        if not candidates:
            return []
        answers = self.by_node("ping", candidates)
        return sorted(node for node, answer in answers.items() if isinstance(answer, dict) and "ok" in answer)

    # -- errors: the one mapping ------------------------------------------------------------------------
    def map(self, exc: BaseException, what: str = "request") -> PipelinectlError:
        """Every failure of redis-py, kombu or Celery as one error kind; never a secret in the text."""
        import socket
        import ssl

        name = type(exc).__name__
        text = str(exc)
        lowered = text.lower()
        where = what if self.url in what or "backend" in what else f"{what} at {self.url}"
        try:
            import redis.exceptions as rex
        except ImportError:  # pragma: no cover - redis is a dependency
            rex = None  # type: ignore[assignment]
        if rex is not None and isinstance(exc, rex.AuthenticationError) or "wrongpass" in lowered \
                or "noauth" in lowered or "invalid password" in lowered or "invalid username-password" in lowered:
            return UnauthenticatedError(f"celery: the Redis server refused the credentials ({where})",
                                        hint="check the context's token (the Redis password) and its 'user' setting")
        if "noperm" in lowered:
            return PermissionDeniedError(f"celery: the Redis user may not do this ({where}): {text.split(',')[0]}")
        if isinstance(exc, ssl.SSLError) or "certificate" in lowered or "ssl" in name.lower():
            err = UnavailableError(f"celery: TLS with {where} failed: {text.splitlines()[0] if text else name}",
                                   hint="check ca-file, or the server's certificate")
            err.retryable = False
            return err
        if rex is not None and isinstance(exc, rex.TimeoutError) or isinstance(exc, (socket.timeout, TimeoutError)):
            if "connect" in lowered or not self._checked:
                return UnreachableError(f"celery: cannot reach {where} (connect timed out)")
            return UnavailableError(f"celery: {where} timed out")
        if rex is not None and isinstance(exc, rex.ConnectionError) or isinstance(exc, (ConnectionError, OSError)):
            if not self._checked or "connect" in lowered or "refused" in lowered:
                return UnreachableError(f"celery: cannot reach {where} (connection refused or no route)")
            return UnavailableError(f"celery: lost the connection to {where}")
        try:
            from kombu.exceptions import OperationalError
        except ImportError:  # pragma: no cover
            OperationalError = ()  # type: ignore[assignment,misc]  # noqa: N806
        if isinstance(exc, OperationalError):
            return UnavailableError(f"celery: broker error in {where}: {text.splitlines()[0] if text else name}")
        if rex is not None and isinstance(exc, rex.ResponseError):
            if "wrongtype" in lowered:
                return UsageError(f"celery: {where}: a key has an unexpected type ({text})")
            return InternalError(f"celery: the Redis server refused {what}: {text}")
        if isinstance(exc, KeyError):
            return NotFoundError(f"celery: {what}: {text}")
        return InternalError(f"celery: {what} failed: {name}: {text}")
