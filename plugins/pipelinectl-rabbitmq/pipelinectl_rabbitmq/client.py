"""How the driver reaches RabbitMQ: the management HTTP API and AMQP 0-9-1 (pika), failures mapped in one place.

- `Management` is the management plugin's HTTP API on the shared `HttpApi` client (TLS, tracing,
  retries, error kinds by HTTP status) with basic auth: the context's `user` setting and its
  token as the password. Status, queue arguments, consumers and rates come from here.
- `Amqp` is one pika `BlockingConnection` per virtual host, opened on first use with the same
  credentials and TLS, and a connect timeout of `connect_timeout(connection)`, so a node that
  cannot be reached is reported within two seconds. Reading and moving messages (DLQ peek,
  redrive, replay, the control stream) goes through it.
- `amqp_error()` is the one place a pika exception becomes a pipelinectl error kind.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from pipelinectl.plugin_api import (
    ConflictError,
    Connection,
    HttpApi,
    InternalError,
    NotFoundError,
    PermissionDeniedError,
    PipelinectlError,
    UnauthenticatedError,
    UnavailableError,
    UnreachableError,
    UsageError,
    connect_timeout,
    register_secret,
    retry,
    ssl_context,
)

T = TypeVar("T")

DEFAULT_USER = "guest"


def seg(value: str) -> str:
    """One URL path segment: vhost '/' is '%2F', queue names may hold anything."""
    return quote(value, safe="")


def credentials(connection: Connection) -> tuple[str, str]:
    """(user, password): the `user` setting (default guest) and the context's token, read only now."""
    user = str(connection.settings.get("user") or DEFAULT_USER)
    password = connection.token() if connection.token else None
    register_secret(password)
    return user, password or ""


class Management(HttpApi):
    """The management plugin's HTTP API (`/api/...`) with basic auth."""

    engine = "the RabbitMQ management API"
    hint_unreachable = "is the management plugin enabled, and is the context's url its address (http://host:15672)?"

    def __init__(self, connection: Connection, transport: Any = None) -> None:
        super().__init__(connection, transport=transport, user_agent="pipelinectl-rabbitmq")

    def auth_headers(self) -> dict[str, str]:
        user, password = credentials(self.connection)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        register_secret(token)
        return {"Authorization": f"Basic {token}"}

    def error_from(self, response: Any) -> PipelinectlError:
        """`{"error": ..., "reason": ...}` -> the error kind by HTTP status, with the reason in one line."""
        err = super().error_from(response)
        if response.status_code == 401:
            return UnauthenticatedError("the RabbitMQ management API refused the credentials",
                                        hint="check the context's `user` setting and its token (the password)")
        return err

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def maybe(self, path: str) -> Any:
        """GET, or None when the object does not exist."""
        try:
            return self.get(path)
        except NotFoundError:
            return None


# -- AMQP -----------------------------------------------------------------------------------------------


def amqp_url(connection: Connection) -> str:
    """The AMQP address: the `amqp_url` setting, else the management host on 5672 (5671 for https)."""
    explicit = connection.settings.get("amqp_url")
    if explicit:
        return str(explicit)
    split = urlsplit(connection.url)
    tls = split.scheme == "https"
    return urlunsplit(("amqps" if tls else "amqp", f"{split.hostname}:{5671 if tls else 5672}", "", "", ""))


def display(url: str) -> str:
    """An address without any user:password@ part, safe to print."""
    split = urlsplit(url)
    host = split.hostname or ""
    if split.port:
        host = f"{host}:{split.port}"
    return urlunsplit((split.scheme, host, "", "", ""))


class Amqp:
    """pika connections (one per vhost) driven synchronously, every failure an error kind."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.url = amqp_url(connection)
        self.shown = display(self.url)
        self._connections: dict[str, Any] = {}
        _quiet_pika()

    def trace(self, line: str) -> None:
        if self.connection.trace:
            self.connection.trace(line)

    def _parameters(self, vhost: str) -> Any:
        import pika

        split = urlsplit(self.url)
        if split.scheme not in ("amqp", "amqps"):
            raise UsageError(f"setting amqp_url must be an amqp:// or amqps:// address, not {display(self.url)}")
        user, password = credentials(self.connection)
        if split.username:  # an explicit user in amqp_url wins over the setting
            user = split.username
        ssl_options = None
        if split.scheme == "amqps":
            import ssl

            context = ssl_context(self.connection)
            if context is False:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            ssl_options = pika.SSLOptions(context, server_hostname=split.hostname)
        timeout = connect_timeout(self.connection)
        return pika.ConnectionParameters(
            host=split.hostname or "localhost",
            port=split.port or (5671 if ssl_options else 5672),
            virtual_host=vhost,
            credentials=pika.PlainCredentials(user, password, erase_on_connect=True),
            ssl_options=ssl_options,
            connection_attempts=1,
            retry_delay=0,
            socket_timeout=timeout,
            stack_timeout=timeout + 0.5,
            blocked_connection_timeout=min(30.0, self.connection.timeout),
            heartbeat=60,
            client_properties={"connection_name": "pipelinectl"},
        )

    def connection_for(self, vhost: str) -> Any:
        """The open connection to `vhost`, connecting (retried within the unreachable window) if needed."""
        current = self._connections.get(vhost)
        if current is not None and current.is_open:
            return current
        import pika

        def once() -> Any:
            self.trace(f"amqp: connecting to {self.shown} vhost {vhost!r}")
            try:
                return pika.BlockingConnection(self._parameters(vhost))
            except Exception as exc:
                raise amqp_error(exc, f"AMQP connection to {self.shown}", vhost=vhost) from None

        opened = retry(once, timeout=self.connection.timeout, what=f"amqp connect {self.shown}", trace=self.trace)
        self._connections[vhost] = opened
        return opened

    def stream(self, vhost: str, queue: str, offset: Any, *, prefetch: int, idle: float,
               first_wait: float | None = None) -> StreamReader:
        """A reader of a stream queue from `offset` (a number, a datetime, "first"...), on a connection of its own."""
        return StreamReader(self, vhost, queue, offset, prefetch=prefetch, idle=idle, first_wait=first_wait)

    def open_connection(self, vhost: str) -> Any:
        """A new connection to `vhost` that the caller owns (and closes)."""
        import pika

        def once() -> Any:
            try:
                return pika.BlockingConnection(self._parameters(vhost))
            except Exception as exc:
                raise amqp_error(exc, f"AMQP connection to {self.shown}", vhost=vhost) from None

        return retry(once, timeout=self.connection.timeout, what=f"amqp connect {self.shown}", trace=self.trace)

    def channel(self, vhost: str) -> Any:
        """A new channel on the vhost's connection (the caller closes it)."""
        conn = self.connection_for(vhost)
        try:
            return conn.channel()
        except Exception as exc:
            raise amqp_error(exc, "opening an AMQP channel", vhost=vhost) from None

    def call(self, what: str, fn: Callable[[], T], *, vhost: str) -> T:
        """Run one pika operation; its failure leaves as an error kind naming `what`."""
        try:
            return fn()
        except PipelinectlError:
            raise
        except Exception as exc:
            raise amqp_error(exc, what, vhost=vhost) from None

    def drop(self, vhost: str) -> None:
        """Forget a connection that broke (the next call reconnects)."""
        conn = self._connections.pop(vhost, None)
        if conn is not None:
            try:
                if conn.is_open:
                    conn.close()
            except Exception:
                pass

    def close(self) -> None:
        for vhost in list(self._connections):
            self.drop(vhost)


class StreamReader:
    """Messages of a stream queue from an offset, until none has come for `idle` seconds
    (`first_wait` for the first one: attaching a reader at an offset takes the node a moment).

    A connection of its own, because of how a stream read ends: pika cancels a consumer by
    rejecting the deliveries it has not handed out yet, and a stream answers a reject by
    closing the whole connection (NOT_IMPLEMENTED). Closing this connection is the end of the
    read anyway; nothing is lost, a stream keeps every message.
    """

    def __init__(self, amqp: Amqp, vhost: str, queue: str, offset: Any, *, prefetch: int, idle: float,
                 first_wait: float | None = None) -> None:
        from collections import deque

        self.amqp = amqp
        self.vhost = vhost
        self.queue = queue
        self.idle = idle
        self.wait = idle if first_wait is None else first_wait
        self.buffer: deque[tuple[Any, Any, bytes]] = deque()
        self.conn = amqp.open_connection(vhost)
        try:
            self.channel = self.conn.channel()
            self.channel.basic_qos(prefetch_count=prefetch)
            self.channel.basic_consume(queue, lambda _ch, m, p, b: self.buffer.append((m, p, b)), auto_ack=False,
                                       arguments={"x-stream-offset": offset})
        except Exception as exc:
            self.close()
            raise amqp_error(exc, f"reading the stream {queue}", vhost=vhost) from None

    def __iter__(self) -> Iterator[tuple[Any, Any, bytes]]:
        while True:
            if not self.buffer:
                deadline = time.monotonic() + self.wait
                while not self.buffer and time.monotonic() < deadline:
                    self.amqp.call(f"reading the stream {self.queue}", lambda d=deadline: self.conn.process_data_events(
                        time_limit=max(0.01, d - time.monotonic())), vhost=self.vhost)
                if not self.buffer:
                    return  # nothing for that long: the end of the stream, as it is now
            self.wait = self.idle
            yield self.buffer.popleft()

    def ack(self, method: Any) -> None:
        self.amqp.call(f"reading the stream {self.queue}", lambda: self.channel.basic_ack(method.delivery_tag),
                       vhost=self.vhost)

    def close(self) -> None:
        try:
            if self.conn.is_open:
                self.conn.close()
        except Exception:  # closed by the broker over the cancel's rejects (see above), or already gone
            pass

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def close_channel(channel: Any) -> None:
    """Close a channel whatever state its connection is in; RabbitMQ requeues what it left unacknowledged."""
    try:
        if channel.is_open:
            channel.close()
    except Exception:  # a channel of a lost connection: RabbitMQ has requeued its messages already
        pass


def _quiet_pika() -> None:
    """pika logs every failed connection attempt at ERROR with a traceback; the error kinds say it once."""
    import logging

    logger = logging.getLogger("pika")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())


def amqp_error(exc: BaseException, what: str, *, vhost: str | None = None) -> PipelinectlError:
    """The one mapping of pika's exceptions (and the socket errors under them) to error kinds."""
    import ssl

    import pika.exceptions as pe

    where = f" (vhost {vhost!r})" if vhost is not None else ""
    if isinstance(exc, PipelinectlError):
        return exc
    if isinstance(exc, ssl.SSLError):
        verify = isinstance(exc, ssl.SSLCertVerificationError)
        err = UnavailableError(f"{what}: the TLS certificate is not trusted ({exc.reason or exc})" if verify
                               else f"{what}: TLS failed ({exc.reason or exc})",
                               hint="give the context its CA with --ca-file FILE (verification stays on)")
        err.retryable = False  # type: ignore[attr-defined]  # retrying cannot fix a certificate
        return err
    if isinstance(exc, (pe.ProbableAuthenticationError, pe.AuthenticationError)):
        return UnauthenticatedError(f"{what}: RabbitMQ refused the credentials",
                                    hint="check the context's `user` setting and its token (the password)")
    if isinstance(exc, pe.ProbableAccessDeniedError):
        return PermissionDeniedError(f"{what}: access to vhost{where} refused (no such vhost, or no permission)")
    if isinstance(exc, (pe.ChannelClosedByBroker, pe.ConnectionClosedByBroker)):
        code, text = exc.reply_code, str(exc.reply_text)
        message = f"{what}: {text}"
        if code == 404:
            return NotFoundError(message)
        if code in (403, 530):
            return PermissionDeniedError(message)
        if code == 406:
            return ConflictError(message)
        if code in (320, 541):  # connection forced (node stopping), internal error
            return UnavailableError(message)
        if code in (402, 501, 502, 503, 504, 505, 506, 540):
            return UsageError(message)
        return InternalError(message)
    if isinstance(exc, pe.AMQPConnectionError):
        # BlockingConnection wraps what went wrong: AMQPConnectionError((inner,)), or a workflow failure
        inner = list(getattr(exc, "exceptions", None) or [a for a in exc.args if isinstance(a, BaseException)])
        for cause in inner:
            if isinstance(cause, (pe.ProbableAuthenticationError, pe.AuthenticationError, pe.ProbableAccessDeniedError,
                                  pe.ConnectionClosedByBroker)):
                return amqp_error(cause, what, vhost=vhost)
        text = "; ".join(str(e) or repr(e) for e in inner) or str(exc)  # pika's connector errors have only a repr
        lowered = text.lower()
        if "ssl" in lowered or "certificate" in lowered:
            err = UnavailableError(f"{what}: TLS failed: {text}",
                                   hint="give the context its CA with --ca-file FILE (verification stays on)")
            err.retryable = False  # type: ignore[attr-defined]
            return err
        if any(word in lowered for word in ("refused", "timed out", "timeout", "no route", "unreachable",
                                            "name or service not known", "errno 111", "getaddrinfo")):
            reason = "connection refused" if "refused" in lowered else "connect timed out" if "time" in lowered \
                else text
            return UnreachableError(f"cannot reach RabbitMQ at {what.split(' to ')[-1]}: {reason}",
                                    hint="is the node running, and is amqp_url (or the url's host, port 5672) right?")
        return UnavailableError(f"{what}: {type(exc).__name__}: {text or 'connection lost'}")
    if isinstance(exc, (pe.StreamLostError, pe.ConnectionClosed, pe.ChannelWrongStateError,
                        pe.ChannelClosed, socket.timeout, ConnectionError, OSError)):
        return UnavailableError(f"{what}: the AMQP connection was lost ({type(exc).__name__})")
    if isinstance(exc, pe.UnroutableError):
        return UnavailableError(f"{what}: the message was returned as unroutable")
    if isinstance(exc, pe.NackError):
        return UnavailableError(f"{what}: the broker refused the message (basic.nack)")
    return InternalError(f"{what}: unexpected {type(exc).__name__}: {exc}")
