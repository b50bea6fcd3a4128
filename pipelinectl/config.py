"""Contexts (kubeconfig style), XDG paths and credential resolution.

The config file is YAML::

    current-context: demo
    contexts:
      demo:
        driver: http
        url: http://127.0.0.1:8765
        pipeline: orders
        token-env: PIPELINECTL_TOKEN      # or token-file / token-exec
        ca-file: /etc/ssl/plane-ca.pem
        insecure-skip-tls-verify: false
        headers: {X-Team: payments}
        settings: {}                      # driver-specific
        protected: true                   # every mutation asks for the context's name

Tokens are never stored in the file itself: a context names where to read one
(an environment variable, a file, or a command whose stdout is the token),
and it is read only when a request needs it.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from time import time_ns
from typing import Any

from .errors import NotFoundError, UsageError
from .paths import cache_dir, config_path, state_dir  # noqa: F401  (re-exported: cache_dir, state_dir)

DRIVER_DEFAULT = "http"


# YAML key <-> attribute; kebab-case in the file, like the CLI flags.
_KEYS = {
    "driver": "driver",
    "url": "url",
    "pipeline": "pipeline",
    "namespace": "namespace",
    "token-env": "token_env",
    "token-file": "token_file",
    "token-exec": "token_exec",
    "ca-file": "ca_file",
    "insecure-skip-tls-verify": "insecure_skip_tls_verify",
    "headers": "headers",
    "settings": "settings",
    "protected": "protected",
}


@dataclass
class Context:
    name: str
    driver: str = DRIVER_DEFAULT
    url: str = ""
    pipeline: str | None = None
    namespace: str | None = None
    token_env: str | None = None
    token_file: str | None = None
    token_exec: str | None = None
    ca_file: str | None = None
    insecure_skip_tls_verify: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    protected: bool = False  # production: mutations need the context's name typed (or --confirm-context)

    def to_yaml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, attr in _KEYS.items():
            value = getattr(self, attr)
            if value not in (None, "", {}, False):
                out[key] = value
        return out

    @classmethod
    def from_yaml_dict(cls, name: str, data: Any, source: Path) -> Context:
        if not isinstance(data, dict):
            raise UsageError(f"{source}: context '{name}' must be a mapping")
        unknown = sorted(str(k) for k in set(data) - set(_KEYS))
        if unknown:
            raise UsageError(f"{source}: context '{name}' has unknown key(s): {', '.join(map(str, unknown))}")
        values = {_KEYS[k]: v for k, v in data.items() if v is not None}  # `key:` with no value = unset
        for attr in ("headers", "settings"):
            if attr in values and not isinstance(values[attr], dict):
                raise UsageError(f"{source}: context '{name}': '{attr}' must be a mapping")
        if "headers" in values:
            headers = values["headers"]
            if not all(isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in headers.items()):
                raise UsageError(f"{source}: context '{name}': 'headers' must map names to text values")
            values["headers"] = {k: str(v) for k, v in headers.items()}
        if "settings" in values and not all(isinstance(k, str) for k in values["settings"]):
            raise UsageError(f"{source}: context '{name}': 'settings' keys must be text")
        for attr in ("insecure_skip_tls_verify", "protected"):
            if attr in values and not isinstance(values[attr], bool):
                raise UsageError(f"{source}: context '{name}': '{attr.replace('_', '-')}' must be true or false")
        for attr in ("driver", "url", "pipeline", "namespace", "token_env", "token_file", "token_exec", "ca_file"):
            if attr in values and values[attr] is not None and not isinstance(values[attr], str):
                raise UsageError(f"{source}: context '{name}': '{attr.replace('_', '-')}' must be a string")
        return cls(name=name, **values)

    def credential_source(self) -> str | None:
        """Where the token comes from, for display: never the token itself."""
        if self.token_env:
            return f"env:{self.token_env}"
        if self.token_file:
            return f"file:{self.token_file}"
        if self.token_exec:
            return "exec:[REDACTED]"
        return None


@dataclass
class Config:
    path: Path
    current_context: str | None = None
    contexts: dict[str, Context] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def get(self, name: str) -> Context:
        try:
            return self.contexts[name]
        except KeyError:
            known = ", ".join(sorted(self.contexts)) or "none"
            raise NotFoundError(
                f"context '{name}' not found in {self.path}",
                hint=f"known contexts: {known}; create one with 'pipelinectl config set-context'",
            ) from None

    def to_yaml_dict(self) -> dict[str, Any]:
        return {
            "current-context": self.current_context,
            "contexts": {name: ctx.to_yaml_dict() for name, ctx in sorted(self.contexts.items())},
        }


def load_config(path: str | Path | None = None, *, must_exist: bool = False) -> Config:
    """Read the config; a malformed one is a usage error.

    A missing file is an empty config (nothing configured yet), unless `must_exist`:
    a file the operator named (--config, PIPELINECTL_CONFIG) that is not there is a
    typo to report, not an empty config to act on.
    """
    resolved = path if isinstance(path, Path) else config_path(path)
    config = Config(path=resolved)
    if not resolved.exists():
        if must_exist:
            raise UsageError(f"config file not found: {resolved}",
                             hint=f"create it with 'pipelinectl --config {resolved} config set-context NAME --url URL'")
        return config
    try:
        mode = resolved.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            config.warnings.append(
                f"config file {resolved} is readable by other users; run 'chmod 600 {resolved}'"
            )
        data = _parsed(resolved)
    except RecursionError:
        raise UsageError(f"config file {resolved} is nested too deeply to be a config") from None
    except ConfigSyntaxError as exc:
        mark = exc.mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"config file {resolved} is not valid YAML{where}") from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {resolved}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"config file {resolved} is not UTF-8 text") from None
    if data is None:
        return config
    if not isinstance(data, dict):
        raise UsageError(f"config file {resolved} must be a mapping with 'contexts' and 'current-context'")
    unknown = sorted(set(map(str, data)) - {"current-context", "contexts"})
    if unknown:
        raise UsageError(f"config file {resolved} has unknown key(s): {', '.join(unknown)}")
    contexts = data.get("contexts") or {}
    if not isinstance(contexts, dict):
        raise UsageError(f"config file {resolved}: 'contexts' must be a mapping of name to context")
    for name, body in contexts.items():
        config.contexts[str(name)] = Context.from_yaml_dict(str(name), body, resolved)
    current = data.get("current-context")
    if current is not None and not isinstance(current, str):
        raise UsageError(f"config file {resolved}: 'current-context' must be a string")
    config.current_context = current
    return config


class ConfigSyntaxError(Exception):
    """The config file is not valid YAML; `mark` is PyYAML's position of the problem, if known."""

    def __init__(self, mark: Any) -> None:
        super().__init__("invalid YAML")
        self.mark = mark


PARSED_FORMAT = 1
RACY_NS = 2_000_000_000  # a file changed this recently may change again within the same mtime tick


def parsed_cache_path(config: Path) -> Path:
    """The parsed copy of a config file: beside it, so it is exactly as private as the file itself."""
    return config.with_name(f".{config.name}.parsed.json")


def _parsed(path: Path) -> Any:
    """The config file's YAML data, from its parsed copy when that matches the file.

    Parsing YAML means importing PyYAML, a sixth of a read command's time. The file changes
    rarely, so its data is kept as JSON beside it (mode 0600, owned by this user), keyed by the
    file's device, inode, size and mtime; any edit, or a save (which replaces the file), makes a
    new key. Data JSON cannot hold exactly (YAML dates, integer keys) is never cached, and, as git
    does for its index, neither is a file modified in the last two seconds. The copy is only a
    speed-up: validation runs on its data as on the file's.
    """
    import json

    info = os.stat(path)
    key = [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns]
    cache = parsed_cache_path(path)
    try:
        fd = os.open(cache, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, encoding="utf-8") as fh:
            mine = os.fstat(fh.fileno())
            if mine.st_uid == os.getuid() and not mine.st_mode & 0o077:
                cached = json.load(fh)
                if cached.get("format") == PARSED_FORMAT and cached.get("key") == key:
                    return cached["data"]
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigSyntaxError(getattr(exc, "problem_mark", None)) from None
    if time_ns() - info.st_mtime_ns >= RACY_NS:
        _write_parsed(cache, key, data)
    return data


def _write_parsed(cache: Path, key: list[int], data: Any) -> None:
    import json

    try:
        text = json.dumps({"format": PARSED_FORMAT, "key": key, "data": data})
        if json.loads(text)["data"] != data:
            return  # JSON would change it (integer keys, tuples): parse the YAML each time
    except (TypeError, ValueError):
        return  # not JSON data (dates, binary): parse the YAML each time
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, cache)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def save_config(config: Config, path: str | Path | None = None) -> Path:
    """Write atomically with mode 0600 (the file may name credential sources)."""
    import yaml

    target = Path(path) if path else config.path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config.to_yaml_dict(), fh, sort_keys=False)
    os.replace(tmp, target)
    return target


def read_token(context: Context, timeout: float = 10.0) -> str | None:
    """Resolve the context's credential now. Errors name the source, never the secret."""
    from .redact import register_secret

    token: str | None = None
    if context.token_env:
        source = f"${context.token_env}"
        value = os.environ.get(context.token_env)
        if not value:
            raise UsageError(f"context '{context.name}' reads its token from {source}, which is not set")
        token = _checked_token(context, value, source)
    elif context.token_file:
        path = Path(context.token_file).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"context '{context.name}': cannot read token file {path}: {exc.strerror}") from None
        if not data.strip():
            raise UsageError(f"context '{context.name}': token file {path} is empty")
        token = _checked_token(context, data.decode("utf-8", "replace"), f"token file {path}")
    elif context.token_exec:
        token = _exec_token(context, timeout)
    register_secret(token)
    return token


def _checked_token(context: Context, value: str, source: str, hint: str | None = None) -> str:
    """The token without surrounding whitespace, if it can travel in an HTTP header.

    A token is one line of printable ASCII with no space inside. Anything else is refused here, where the
    source is known: sent on, the HTTP layer would refuse it with a message that quotes the header, token
    and all. The message says what is wrong, never where in the value or what the value is.
    """
    token = value.strip()
    problem = _header_value_problem(token, spaces=False)
    if problem is None:
        return token
    raise UsageError(f"context '{context.name}': the token from {source} {problem}; nothing was sent",
                     hint=hint or "a token is one line of printable ASCII without spaces")


def check_headers(context: Context) -> None:
    """The context's extra headers must be sendable; an error names the header, never its value."""
    for name, value in context.headers.items():
        problem = _header_value_problem(value.strip(), spaces=True)
        if problem is not None and problem != "is empty":
            raise UsageError(f"context '{context.name}': the value of header '{name}' {problem}; nothing was sent",
                             hint="a header value is one line of printable ASCII")


def _header_value_problem(text: str, *, spaces: bool) -> str | None:
    if not text:
        return "is empty"
    if "\n" in text or "\r" in text:
        return "is more than one line"
    if not spaces and any(ch in " \t" for ch in text):
        return "has a space inside"
    if any(ord(ch) > 126 for ch in text):
        return "holds a character that is not ASCII (or bytes that are not text)"
    if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in text):
        return "holds a control character"
    return None


def _exec_token(context: Context, timeout: float) -> str:
    import shlex
    import subprocess

    assert context.token_exec is not None
    what = "token-exec command"
    try:
        argv = shlex.split(context.token_exec)
        if argv:  # the program's name only: its arguments may hold a secret
            what = f"token-exec command '{os.path.basename(argv[0])}'"
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"context '{context.name}': {what} could not run: {type(exc).__name__}") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"context '{context.name}': {what} timed out after {timeout:g}s") from None
    if done.returncode != 0:
        raise UsageError(f"context '{context.name}': {what} exited with {done.returncode}")
    if not done.stdout.strip():
        raise UsageError(f"context '{context.name}': {what} printed no token")
    return _checked_token(context, done.stdout.decode("utf-8", "replace"), what,
                          hint="the command must print only the token on stdout (notices go to stderr)")


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
