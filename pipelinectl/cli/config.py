"""`pipelinectl config`: contexts, kubeconfig style. Which plane, how to reach it, which is current.

A context never holds a token, only where to read one (env var, file, exec
command); `config view` shows those sources and hides exec commands, since a
command line can carry a secret. `set-context` validates everything before it
writes, so a bad flag leaves the file as it was.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from pipelinectl.cli.commands import CONTEXT_SETTINGS
from pipelinectl.cli.session import current
from pipelinectl.errors import UsageError

app = typer.Typer(
    name="config",
    help="""Manage contexts: which control plane, how to reach it.

    Examples:
      pipelinectl config set-context staging --url https://plane:8765 --token-env TOKEN
      pipelinectl config use-context staging
    """,
    no_args_is_help=True,
    add_completion=False,
    context_settings=CONTEXT_SETTINGS,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,99}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_SECRET_HEADER = re.compile(r"(?i)authorization|cookie|token|secret|key|password|credential")


# -- shapes -------------------------------------------------------------------
def context_dict(ctx: Any, current_name: str | None) -> dict[str, Any]:
    """The machine shape of a context (docs/output.md): credential *sources* only, secrets hidden."""
    from pipelinectl.redact import REDACTED, redact

    headers = {k: (REDACTED if _SECRET_HEADER.search(k) else redact(str(v))) for k, v in ctx.headers.items()}
    settings = {k: (REDACTED if _SECRET_HEADER.search(k) else _redact_value(v)) for k, v in ctx.settings.items()}
    return {
        "kind": "Context",
        "name": ctx.name,
        "current": ctx.name == current_name,
        "driver": ctx.driver,
        "url": redact(ctx.url),
        "pipeline": ctx.pipeline,
        "namespace": ctx.namespace,
        "credentials": ctx.credential_source(),
        "ca_file": ctx.ca_file,
        "insecure_skip_tls_verify": ctx.insecure_skip_tls_verify,
        "headers": headers,
        "settings": settings,
        "protected": ctx.protected,
    }


def _redact_value(value: Any) -> Any:
    from pipelinectl.redact import redact

    return redact(value) if isinstance(value, str) else value


def _emit(data: dict[str, Any], human: str | None = None) -> None:
    """Machine formats print `data`; table formats print `human` (or YAML of data)."""
    session = current()
    renderer = session.renderer
    if session.options.output in ("json", "yaml", "jsonl", "name"):
        renderer.emit_mapping(data)
    elif human is not None:
        typer.echo(human)
    else:
        import yaml

        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())


def _save(config: Any) -> Path:
    from pipelinectl.config import save_config

    try:
        return save_config(config)
    except OSError as exc:
        raise UsageError(f"cannot write config file {config.path}: {exc.strerror or exc}") from None


# -- read ---------------------------------------------------------------------
@app.command("view")
def view() -> None:
    """Show the config, with credentials shown only as their source.

    A token-exec command is shown as exec:[REDACTED]; header and setting values
    that look secret are hidden.

    Examples:
      pipelinectl config view
      pipelinectl config view -o json
    """
    config = current().config
    data = {
        "kind": "Config",
        "path": str(config.path),
        "current_context": config.current_context,
        "contexts": [context_dict(ctx, config.current_context) for _, ctx in sorted(config.contexts.items())],
    }
    if current().options.output in ("table", "wide"):
        import yaml

        shown = {
            "current-context": config.current_context,
            "contexts": {
                c["name"]: {k.replace("_", "-"): v for k, v in c.items()
                            if k not in ("kind", "name", "current") and v not in (None, {}, False)}
                for c in data["contexts"]
            },
        }
        typer.echo(f"# {config.path}")
        typer.echo(yaml.safe_dump(shown, sort_keys=False, allow_unicode=True).rstrip())
        return
    _emit(data)


@app.command("get-contexts")
def get_contexts() -> None:
    """List contexts; the current one is marked with *.

    Examples:
      pipelinectl config get-contexts
      pipelinectl config get-contexts -o name
    """
    session = current()
    config = session.config
    rows = [context_dict(ctx, config.current_context) for _, ctx in sorted(config.contexts.items())]
    fmt = session.options.output
    if fmt in ("json", "yaml"):
        session.renderer.emit_mapping({"kind": "ContextList", "current_context": config.current_context,
                                       "items": rows})
        return
    if fmt in ("jsonl", "name"):
        for row in rows:
            session.renderer.emit_mapping(row)
        return
    if not rows:
        typer.echo(f"No contexts in {config.path}; create one with 'pipelinectl config set-context NAME --url URL'.")
        return
    headers = ["CURRENT", "NAME", "PROTECTED", "DRIVER", "URL", "PIPELINE", "CREDENTIALS"]
    if fmt == "wide":
        headers += ["NAMESPACE", "TLS"]
    table = []
    for row in rows:
        line = ["*" if row["current"] else "", row["name"], "yes" if row["protected"] else "-", row["driver"],
                row["url"], row["pipeline"] or "-", row["credentials"] or "-"]
        if fmt == "wide":
            tls = "insecure" if row["insecure_skip_tls_verify"] else (f"ca:{row['ca_file']}" if row["ca_file"] else "verify")
            line += [row["namespace"] or "-", tls]
        table.append(line)
    session.renderer.plain_table(headers, table)


@app.command("current-context")
def current_context() -> None:
    """Print the current context's name (PIPELINECTL_CONTEXT or --context override it per run).

    Examples:
      pipelinectl config current-context
    """
    session = current()
    config = session.config
    name = session.options.context or config.current_context
    if not name:
        raise UsageError("no current context is set",
                         hint="choose one with 'pipelinectl config use-context NAME'")
    ctx = config.get(name)
    _emit(context_dict(ctx, name), human=name)


# -- write --------------------------------------------------------------------
@app.command("use-context")
def use_context(name: str = typer.Argument(..., help="Context to make current.")) -> None:
    """Make NAME the current context.

    Examples:
      pipelinectl config use-context staging
    """
    config = current().config
    ctx = config.get(name)
    config.current_context = name
    _save(config)
    _emit(context_dict(ctx, name), human=f"Switched to context '{name}'.")


@app.command("delete-context")
def delete_context(name: str = typer.Argument(..., help="Context to delete.")) -> None:
    """Delete a context. Deleting the current one leaves no context selected.

    Examples:
      pipelinectl config delete-context old-staging
    """
    session = current()
    config = session.config
    ctx = config.get(name)
    data = context_dict(ctx, config.current_context)
    del config.contexts[name]
    was_current = config.current_context == name
    if was_current:
        config.current_context = None
    _save(config)
    message = f"Deleted context '{name}'."
    if was_current:
        message += " It was the current context; choose another with 'pipelinectl config use-context NAME'."
    _emit(data, human=message)


@app.command("set-context")
def set_context(
    name: str = typer.Argument(..., help="Context to create or change."),
    driver: str | None = typer.Option(None, "--driver", help="Driver: http (built in), or a plugin's (see 'plugin list')."),
    url: str | None = typer.Option(None, "--url", help="Where the control plane listens."),
    pipeline: str | None = typer.Option(None, "--pipeline", "-p", help="Default pipeline for commands."),
    namespace: str | None = typer.Option(None, "--namespace", help="Engine namespace (e.g. Temporal)."),
    token_env: str | None = typer.Option(None, "--token-env", metavar="VAR", help="Read the token from $VAR."),
    token_file: str | None = typer.Option(None, "--token-file", metavar="FILE", help="Read the token from FILE."),
    token_exec: str | None = typer.Option(None, "--token-exec", metavar="CMD",
                                          help="Run CMD; its stdout is the token (like kubeconfig exec)."),
    no_token: bool = typer.Option(False, "--no-token", help="Remove the credential source."),
    ca_file: str | None = typer.Option(None, "--ca-file", metavar="FILE", help="CA bundle to verify the plane's TLS certificate."),
    insecure: bool | None = typer.Option(None, "--insecure-skip-tls-verify/--verify-tls",
                                         help="Do NOT verify the TLS certificate (unsafe; warned on every run)."),
    header: list[str] = typer.Option([], "--header", metavar="K=V", help="Extra request header (repeatable)."),
    setting: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Driver setting (repeatable)."),
    protected: bool | None = typer.Option(
        None, "--protected/--no-protected",
        help="Production guard: every mutation names the context and needs its name typed "
             "(off a terminal: --confirm-context NAME)."),
    use: bool = typer.Option(False, "--use", help="Also make it the current context."),
) -> None:
    """Create a context, or change the given fields of an existing one.

    Exactly one credential source at a time: --token-env, --token-file or
    --token-exec. The token itself is never written to the config file.

    Examples:
      pipelinectl config set-context prod --url https://plane:8765 --token-exec "vault read -field=t x"
      pipelinectl config set-context prod --protected
    """
    from pipelinectl.config import Context, warn

    session = current()
    config = session.config_to_edit()
    if not _NAME.match(name):
        raise UsageError(f"invalid context name '{name}' (letters, digits and . _ @ : / - only)")
    sources = [flag for flag, value in (("--token-env", token_env), ("--token-file", token_file),
                                        ("--token-exec", token_exec)) if value is not None]
    if len(sources) > 1 or (sources and no_token):
        raise UsageError(f"give one credential source, not {' and '.join(sources + (['--no-token'] if no_token else []))}")
    existing = config.contexts.get(name)
    ctx = Context(name=name) if existing is None else Context(**{**existing.__dict__})
    ctx.headers = dict(ctx.headers)
    ctx.settings = dict(ctx.settings)
    if existing is None and not url:
        raise UsageError(f"context '{name}' is new: --url is required")

    if driver is not None:
        ctx.driver = driver.strip()
    _check_driver(ctx.driver)
    if url is not None:
        ctx.url = url.strip()
    _check_url(ctx.driver, ctx.url)
    if pipeline is not None:
        ctx.pipeline = pipeline or None
    if namespace is not None:
        ctx.namespace = namespace or None
    if sources or no_token:
        ctx.token_env = ctx.token_file = ctx.token_exec = None
    if token_env is not None:
        if not _ENV_NAME.match(token_env):
            raise UsageError(f"--token-env: '{token_env}' is not an environment variable name")
        ctx.token_env = token_env
    if token_file is not None:
        path = Path(token_file).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        ctx.token_file = str(path)
        if not path.is_file():
            warn(f"token file {path} does not exist yet")
        elif path.stat().st_mode & 0o077:
            warn(f"token file {path} is readable by other users; run 'chmod 600 {path}'")
    if token_exec is not None:
        import shlex

        try:
            argv = shlex.split(token_exec)
        except ValueError:
            raise UsageError("--token-exec: the command has unbalanced quotes") from None
        if not argv:
            raise UsageError("--token-exec: empty command")
        ctx.token_exec = token_exec
    if ca_file is not None:
        if ca_file == "":
            ctx.ca_file = None
        else:
            path = Path(ca_file).expanduser().resolve()
            if not path.is_file():  # every request would fail its TLS handshake: refuse now, clearly
                raise UsageError(f"--ca-file: {path} does not exist",
                                 hint="give the CA bundle that signed the plane's certificate, "
                                      "or leave --ca-file out to trust the system's CAs")
            ctx.ca_file = str(path)
    if insecure is not None:
        ctx.insecure_skip_tls_verify = insecure
    if protected is not None:
        ctx.protected = protected
    for item in header:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key or not _HEADER_NAME.match(key):
            raise UsageError(f"--header: '{item}' is not NAME=VALUE")
        if key.lower() in ("authorization", "idempotency-key", "if-match"):
            raise UsageError(f"--header: '{key}' is set by pipelinectl itself; use a --token-* source for credentials")
        if value:
            ctx.headers[key] = value
        else:
            ctx.headers.pop(key, None)
    for item in setting:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UsageError(f"--set: '{item}' is not KEY=VALUE")
        if value == "":
            ctx.settings.pop(key, None)
        else:
            ctx.settings[key] = _setting_value(value)

    if ctx.insecure_skip_tls_verify:
        warn(f"context '{name}': TLS certificate verification is OFF (insecure-skip-tls-verify); "
             "anyone on the path can read the token")
    if ctx.url.startswith("http://") and ctx.credential_source() and not _loopback(ctx.url):
        warn(f"context '{name}' sends its token over plain http to a non-loopback host; prefer https")
    config.contexts[name] = ctx
    if use or not config.current_context:
        config.current_context = name
    _save(config)
    verb = "Created" if existing is None else "Modified"
    extra = " (now the current context)" if config.current_context == name else ""
    if protected:
        extra += "; it is protected: every mutation on it asks for its name"
    _emit(context_dict(ctx, config.current_context), human=f"{verb} context '{name}'{extra}.")


def _check_driver(driver: str) -> None:
    from pipelinectl.plugins import driver_names

    names = driver_names()
    if driver not in names:
        raise UsageError(f"driver '{driver}' is not installed",
                         hint=f"installed drivers: {', '.join(names)}; see 'pipelinectl plugin list'")


def _check_url(driver: str, url: str) -> None:
    from urllib.parse import urlsplit

    if not url:
        raise UsageError("--url: empty URL")
    first = url.split(",")[0].strip()
    parts = urlsplit(first)
    if not parts.scheme or "://" not in first:
        raise UsageError(f"--url: '{url}' has no scheme (e.g. http://127.0.0.1:8765)")
    if not parts.netloc and parts.scheme != "unix":
        raise UsageError(f"--url: '{url}' has no host")
    try:
        parts.port  # noqa: B018  (validates the port)
    except ValueError:
        raise UsageError(f"--url: '{url}' has an invalid port") from None
    from pipelinectl.plugins import driver_url_schemes

    schemes = driver_url_schemes(driver)
    if schemes:
        for part in url.split(","):
            scheme = urlsplit(part.strip()).scheme
            if scheme not in schemes:
                raise UsageError(f"--url: the {driver} driver takes {' or '.join(s + '://' for s in schemes)} URLs, "
                                 f"not {scheme}://")


def _loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def _setting_value(text: str) -> Any:
    """`--set retries=3` stores 3, `--set tls=true` stores true; anything else a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    return text

