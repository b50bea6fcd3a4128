"""The Session: global options + config + context, resolved lazily for one invocation.

Commands ask it for the driver (`session.plane`), the pipeline to act on,
to render results, to confirm destructive actions and to audit mutations.
Nothing here is resolved until a command needs it, so `--help` and commands
that never touch a control plane stay fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pipelinectl.errors import AbortedError, UsageError

from .options import GlobalOptions

if TYPE_CHECKING:
    from pipelinectl.config import Config, Context
    from pipelinectl.output import Renderer
    from pipelinectl.plane import Connection, ControlPlane

_current: Session | None = None


class Session:
    def __init__(self, options: GlobalOptions) -> None:
        self.options = options
        self._protected_confirmed = False  # the context's name was typed (or given) for this command
        # Under `pipelinectl apply`: re-reads the plan's preconditions just before the mutation is sent.
        self.plan_check: Callable[[], None] | None = None

    # -- configuration ------------------------------------------------------
    @cached_property
    def config(self) -> Config:
        """The config; a file named by --config / PIPELINECTL_CONFIG must exist."""
        return self._load_config(must_exist=self.options.config is not None)

    def config_to_edit(self) -> Config:
        """The config `config set-context` edits: a named file that does not exist yet is created."""
        if "config" not in self.__dict__:
            self.__dict__["config"] = self._load_config(must_exist=False)
        return self.config

    def _load_config(self, *, must_exist: bool) -> Config:
        from pipelinectl.config import load_config, warn

        config = load_config(self.options.config, must_exist=must_exist)
        for message in config.warnings:
            warn(message)
        return config

    @property
    def context_name(self) -> str:
        name = self.options.context or self.config.current_context
        if not name:
            raise UsageError(
                "no context selected",
                hint="run 'pipelinectl demo' to start a local control plane, or "
                "'pipelinectl config set-context NAME --url URL' then 'pipelinectl config use-context NAME'",
            )
        return name

    @cached_property
    def context(self) -> Context:
        return self.config.get(self.context_name)

    @cached_property
    def connection(self) -> Connection:
        return self.connection_for(self.context)

    def connection_for(self, ctx: Context) -> Connection:
        """A Connection for any context of the config (`status --all-contexts` uses several)."""
        from pipelinectl.config import check_headers, read_token, warn
        from pipelinectl.plane import Connection

        if not ctx.url:
            raise UsageError(f"context '{ctx.name}' has no url; set one with 'pipelinectl config set-context {ctx.name} --url URL'")
        check_headers(ctx)
        if ctx.insecure_skip_tls_verify and ctx.url.startswith("https"):
            warn(f"context '{ctx.name}': TLS certificate verification is OFF (insecure-skip-tls-verify)")
        token_cache: list[str | None] = []

        def token() -> str | None:
            if not token_cache:
                token_cache.append(read_token(ctx, timeout=min(self.options.timeout, 30.0)))
            return token_cache[0]

        return Connection(
            context=ctx.name,
            driver=ctx.driver,
            url=ctx.url,
            pipeline=ctx.pipeline,
            namespace=ctx.namespace,
            token=token,
            ca_file=ctx.ca_file,
            insecure_skip_tls_verify=ctx.insecure_skip_tls_verify,
            headers=dict(ctx.headers),
            settings=dict(ctx.settings),
            timeout=self.options.timeout,
            trace=self.trace if self.options.verbose else None,
        )

    @cached_property
    def plane(self) -> ControlPlane:
        from pipelinectl.plugins import make_driver

        return make_driver(self.connection)

    def plane_for(self, ctx: Context) -> ControlPlane:
        """A driver for another context; the caller closes it."""
        from pipelinectl.plugins import make_driver

        return make_driver(self.connection_for(ctx))

    def pipeline(self, explicit: str | None = None) -> str:
        """The pipeline to act on: -p, else the context's, else the plane's only one.

        A context may name several pipelines (`--pipeline ORDERS,PAYMENTS`, e.g. NATS
        streams): then -p must choose. An engine context without a pipeline uses its
        namespace (a Temporal namespace is the pipeline), sparing a status() round trip.
        """
        if explicit:
            return explicit
        ctx = self.context
        if ctx.pipeline:
            names = [n.strip() for n in ctx.pipeline.split(",") if n.strip()]
            if len(names) == 1:
                return names[0]
            raise UsageError(f"context '{ctx.name}' names several pipelines; choose one with -p/--pipeline",
                             hint=f"pipelines: {', '.join(names)}")
        if ctx.namespace and ctx.driver != "http":
            return ctx.namespace
        pipelines = self.plane.status()
        if len(pipelines) == 1:
            return pipelines[0].name
        names = ", ".join(p.name for p in pipelines) or "none"
        raise UsageError("this control plane has several pipelines; choose one with -p/--pipeline",
                         hint=f"pipelines: {names}")

    # -- output -------------------------------------------------------------
    @cached_property
    def renderer(self) -> Renderer:
        from pipelinectl.output import Renderer, terminal_width

        return Renderer(self.options.output, color=self.color, width=terminal_width())

    @property
    def color(self) -> bool:
        return not self.options.no_color and sys.stdout.isatty() and os.environ.get("TERM") != "dumb"

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and sys.stdout.isatty()

    def emit(self, obj: Any) -> None:
        self.renderer.emit(obj)

    def info(self, message: str) -> None:
        """A human note on stderr; silent in machine output modes."""
        if not self.options.machine:
            sys.stderr.write(self.redact(message) + "\n")

    def trace(self, line: str) -> None:
        sys.stderr.write(self.redact(line) + "\n")

    def redact(self, text: str) -> str:
        from pipelinectl.redact import redact

        return redact(text)

    # -- safety -------------------------------------------------------------
    @property
    def protected(self) -> bool:
        """The context in use is marked `protected: true`: its mutations need its name typed."""
        return self.context.protected

    def confirm(self, action: str, *, yes: bool) -> None:
        """Ask before a destructive action; off a TTY (or in machine output) require --yes.

        The prompt names the context, so nobody writes to production thinking it is staging.
        On a protected context the operator types the context's name instead (`confirm_protected`).
        `--confirm-context NAME` naming the context in use is the answer given ahead.
        """
        if self.protected:
            self.confirm_protected(action, yes=yes)
            return
        if yes or self._named_ahead():
            return
        where = f"context '{self.options.context or self.config.current_context}'"
        if self.options.machine:
            raise UsageError(f"refusing to {action} on {where} without --yes in -o {self.options.output} mode")
        if not self.interactive:
            raise UsageError(f"refusing to {action} on {where} without --yes (no terminal to ask on)")
        sys.stderr.write(f"About to {action} on {where}.\n")
        sys.stderr.write("Proceed? [y/N]: ")
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not answer:
            raise AbortedError("no answer on standard input (end of file); nothing was changed")
        if answer.strip().lower() not in ("y", "yes"):
            raise AbortedError("not confirmed; nothing was changed")

    def confirm_protected(self, action: str, *, yes: bool = False) -> None:
        """On a protected context: say what is about to happen where, then have the context's name typed.

        Off a terminal (or in machine output) nothing can be typed: --yes alone is refused and
        --confirm-context NAME is required. Asked once per command.
        """
        if self._protected_confirmed:
            return
        from pipelinectl.redact import redact

        name = self.context_name
        sys.stderr.write(self.redact(f"About to {action} on protected context '{name}' "
                                     f"({self.context.driver} {redact(self.context.url)}).") + "\n")
        if self._named_ahead():
            self._protected_confirmed = True
            return
        if self.options.machine or not self.interactive:
            why = f"-o {self.options.output} never prompts" if self.options.machine else "no terminal to ask on"
            alone = "--yes alone is not enough there; " if yes else ""
            raise UsageError(f"refusing to {action} on protected context '{name}' ({why}): {alone}"
                             f"confirm with --confirm-context {name}")
        sys.stderr.write(f"Type the context name ({name}) to confirm: ")
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not answer:
            raise AbortedError("no answer on standard input (end of file); nothing was changed")
        if answer.strip() != name:
            raise AbortedError(f"'{answer.strip()}' is not the context's name; not confirmed, nothing was changed")
        self._protected_confirmed = True

    def _named_ahead(self) -> bool:
        """--confirm-context given: it must name the context in use (a wrong name is refused)."""
        named = self.options.confirm_context
        if named is None:
            return False
        if named != self.context_name:
            raise UsageError(f"--confirm-context '{named}' does not name the context in use, "
                             f"'{self.context_name}'; nothing was changed")
        return True

    @contextmanager
    def confirming(self, name: str | None) -> Iterator[None]:
        """For one action a caller confirmed itself (the dashboard's page): `name` as --confirm-context."""
        saved = self.options.confirm_context
        self.options.confirm_context, self._protected_confirmed = name, False
        try:
            yield
        finally:
            self.options.confirm_context, self._protected_confirmed = saved, False

    def guard(self, action: str) -> None:
        """The last gate before a mutation is sent; the mutate flow calls it for every verb.

        A protected context confirms here if the verb did not already (runbook verbs never ask
        otherwise), a wrong --confirm-context is refused, and the plan being applied
        (`pipelinectl apply`) has its preconditions read from the plane once more.
        """
        if self.protected:
            self.confirm_protected(action)
        else:
            self._named_ahead()
        if self.plan_check is not None:
            check, self.plan_check = self.plan_check, None
            check()

    def audit(self, verb: str, target: str, arguments: dict[str, Any], result: str,
              request_id: str | None = None) -> None:
        from pipelinectl.audit import append
        from pipelinectl.plane import current_plan

        append(
            context=self.options.context or self.config.current_context,
            verb=verb,
            target=target,
            arguments=arguments,
            result=result,
            request_id=request_id,
            plan=current_plan(),
        )

    def external_env(self) -> dict[str, str]:
        """Non-secret settings handed to a `pipelinectl-NAME` executable."""
        env = {"PIPELINECTL_OUTPUT": self.options.output}
        try:
            ctx = self.context
        except Exception:  # no context: the external plugin may not need one
            return env
        env.update({"PIPELINECTL_CONTEXT": ctx.name, "PIPELINECTL_DRIVER": ctx.driver, "PIPELINECTL_URL": ctx.url})
        if ctx.pipeline:
            env["PIPELINECTL_PIPELINE"] = ctx.pipeline
        if ctx.namespace:
            env["PIPELINECTL_NAMESPACE"] = ctx.namespace
        return env

    def close(self) -> None:
        if "plane" in self.__dict__:
            self.plane.close()


def start(options: GlobalOptions) -> Session:
    global _current
    _current = Session(options)
    return _current


def current() -> Session:
    """The session of this invocation (commands call this; tests may start their own)."""
    if _current is None:
        return start(GlobalOptions())
    return _current


def peek() -> Session | None:
    return _current


def finish() -> None:
    global _current
    if _current is not None:
        try:
            _current.close()
        finally:
            _current = None
