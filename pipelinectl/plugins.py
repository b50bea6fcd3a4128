"""Plugin registry: drivers and command groups, discovered without importing them.

Two entry-point groups:

- ``pipelinectl.drivers``: ``NAME = "module:factory"``; ``factory(Connection)``
  returns a ControlPlane. A context's ``driver: NAME`` selects it.
- ``pipelinectl.commands``: ``NAME = "module:app"``; a typer app mounted as
  ``pipelinectl NAME ...``.

Discovery reads distribution metadata only (cached per installation change, see
plugin_index.py); a plugin's module is imported when
its driver is used or its command runs. A plugin that fails to import is
reported (``plugin list``, a warning naming it) and never breaks other commands.

Executables named ``pipelinectl-NAME`` on PATH run as ``pipelinectl NAME ...``
(git and kubectl style) with the current context's non-secret settings in
their environment (``PIPELINECTL_CONTEXT``, ``_DRIVER``, ``_URL``, ...).

``PIPELINECTL_LOAD_PLUGINS`` limits discovery to the listed plugin or
distribution names (comma-separated; empty: none), as llm's LLM_LOAD_PLUGINS
does: tests keep installed plugins out with it, and an operator can rule a
broken plugin out without uninstalling it. ``register()``/``unregister()`` add
entries in-process (tests, embedding).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import plugin_index
from .errors import InternalError, UsageError
from .model import Resource

if TYPE_CHECKING:
    from .plane import Connection, ControlPlane

DRIVER_GROUP = "pipelinectl.drivers"
COMMAND_GROUP = "pipelinectl.commands"

# Built in: resolved without reading any metadata.
BUILTIN_DRIVERS: dict[str, str] = {"http": "pipelinectl.drivers.http:HttpControlPlane"}


@dataclass(frozen=True)
class PluginEntry:
    """One registered driver or command group, as metadata describes it."""

    name: str
    kind: str  # "driver" | "command"
    target: str  # "module:attr"
    distribution: str = "pipelinectl"
    version: str = ""
    summary: str = ""
    extras: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def load(self) -> Any:
        """Import the target; any failure becomes a PluginLoadError naming this plugin."""
        try:
            module_name, _, attr = self.target.partition(":")
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
            return obj
        except Exception as exc:  # ImportError, a missing attribute, an error raised at import...
            reason = f"{type(exc).__name__}: {exc}"
            raise PluginLoadError(
                f"{self.kind} plugin '{self.name}' ({self.distribution}) failed to load: {reason}",
                hint=f"see 'pipelinectl plugin list'; {LOAD_PLUGINS_ENV} can leave it out",
                reason=reason,
            ) from exc


class PluginLoadError(InternalError):
    """A plugin's module failed to import (or lacks its target): named, one line, exit 1."""

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason  # the underlying error alone, for `plugin list`


@dataclass(kw_only=True)
class PluginInfo(Resource):
    """One row of `plugin list`: what is installed, what it can do, and why it failed to load."""

    kind: str = "Plugin"
    name: str
    type: str  # driver | command | external
    target: str  # module:attr, or the executable's path
    distribution: str = ""
    version: str = ""
    summary: str = ""
    builtin: bool = False
    capabilities: list[str] | None = None  # drivers: the verbs they support
    error: str | None = None


LOAD_PLUGINS_ENV = plugin_index.LOAD_PLUGINS_ENV
EXTERNAL_PREFIX = "pipelinectl-"
# Environment names an external plugin must never receive from us (a token, a secret).
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "API_KEY", "APIKEY", "CREDENTIAL", "AUTHORIZATION")

_registered: dict[tuple[str, str], PluginEntry] = {}  # (kind, name) -> entry, in-process
_load_errors: dict[tuple[str, str], str] = {}  # (kind, name) -> why discovery or loading failed


def _entries(group: str) -> tuple[PluginEntry, ...]:
    """The group's installed entry points (metadata only; cached per installation by plugin_index)."""
    kind = "driver" if group == DRIVER_GROUP else "command"
    found = []
    for row in plugin_index.rows(group):
        if "error" in row:  # malformed metadata: report it, keep the others
            _load_errors[(kind, row["name"])] = row["error"]
        elif plugin_index.allowed(row["name"], row["distribution"]):
            found.append(PluginEntry(name=row["name"], kind=kind, target=row["value"], distribution=row["distribution"],
                                     version=row["version"], summary=row["summary"]))
    return tuple(sorted(found, key=lambda e: e.name))


def clear_cache() -> None:
    """Forget what discovery found (after installing a plugin in-process, or in tests)."""
    plugin_index.forget()
    _load_errors.clear()


def register(entry: PluginEntry) -> PluginEntry:
    """Add a driver or command group in-process; it wins over an installed one of the same name."""
    if entry.kind not in ("driver", "command"):
        raise ValueError(f"plugin kind must be 'driver' or 'command', not {entry.kind!r}")
    _registered[(entry.kind, entry.name)] = entry
    return entry


def unregister(name: str, kind: str = "driver") -> None:
    _registered.pop((kind, name), None)


def driver_entries() -> dict[str, PluginEntry]:
    entries = {name: PluginEntry(name, "driver", target) for name, target in BUILTIN_DRIVERS.items()}
    for entry in _entries(DRIVER_GROUP):
        entries.setdefault(entry.name, entry)
    entries.update({name: e for (kind, name), e in _registered.items() if kind == "driver"})
    return entries


def command_entries() -> dict[str, PluginEntry]:
    entries = {entry.name: entry for entry in _entries(COMMAND_GROUP)}
    entries.update({name: e for (kind, name), e in _registered.items() if kind == "command"})
    return entries


def driver_names() -> list[str]:
    return sorted(driver_entries())


def make_driver(connection: Connection) -> ControlPlane:
    """Import the context's driver (only now) and build it for this connection."""
    entries = driver_entries()
    entry = entries.get(connection.driver)
    if entry is None:
        known = ", ".join(sorted(entries))
        raise UsageError(
            f"context '{connection.context}' uses driver '{connection.driver}', which is not installed",
            hint=f"installed drivers: {known}; see 'pipelinectl plugin list'",
        )
    factory = entry.load()  # a broken plugin raises PluginLoadError naming it, never a traceback
    return factory(connection)


def driver_url_schemes(name: str) -> tuple[str, ...]:
    """The URL schemes a driver serves (its factory's `url_schemes`); empty when it does not say.

    Loads the driver: only `config set-context` asks, so the import is paid rarely.
    A driver that fails to load declares nothing; using it reports the load error.
    """
    entry = driver_entries().get(name)
    if entry is None:
        return ()
    try:
        declared = getattr(entry.load(), "url_schemes", None)
    except PluginLoadError:
        return ()
    return tuple(declared) if declared else ()


# -- plugin list ----------------------------------------------------------------


def _capabilities(factory: Any) -> list[str] | None:
    """The verbs a driver declares (its `capabilities`), or None when it does not say."""
    caps = getattr(factory, "capabilities", None)
    if caps is None:
        return None
    return sorted(getattr(c, "value", str(c)) for c in caps)


def list_plugins(*, include_builtin: bool = True, include_external: bool = True) -> list[Any]:
    """Every driver, command group and external executable, loaded to report what it can do.

    Loading is what this listing is for; a plugin that fails to load is listed with
    its error instead of raising.
    """
    infos: list[Any] = []
    for entry in driver_entries().values():
        builtin = entry.name in BUILTIN_DRIVERS and entry.target == BUILTIN_DRIVERS[entry.name]
        if builtin and not include_builtin:
            continue
        info = PluginInfo(name=entry.name, type="driver", target=entry.target,
                          distribution=entry.distribution, version=_version_of(entry, builtin),
                          summary=entry.summary, builtin=builtin)
        try:
            info.capabilities = _capabilities(entry.load())
        except PluginLoadError as exc:
            info.error = exc.reason
        infos.append(info)
    for entry in command_entries().values():
        info = PluginInfo(name=entry.name, type="command", target=entry.target,
                          distribution=entry.distribution, version=entry.version, summary=entry.summary)
        try:
            entry.load()
        except PluginLoadError as exc:
            info.error = exc.reason
        infos.append(info)
    for (kind, name), why in sorted(_load_errors.items()):
        infos.append(PluginInfo(name=name, type=kind, target="?", distribution="?", error=why))
    if include_external:
        for name, path in sorted(external_commands().items()):
            infos.append(PluginInfo(name=name, type="external", target=path, distribution="PATH"))
    return infos


def _version_of(entry: PluginEntry, builtin: bool) -> str:
    if entry.version or not builtin:
        return entry.version
    from . import __version__

    return __version__


# -- external executables ---------------------------------------------------------


def find_external(name: str) -> str | None:
    """Path of an executable `pipelinectl-NAME` on PATH (git/kubectl style plugins)."""
    import shutil

    if not name or "/" in name or os.sep in name or name.startswith("-"):
        return None
    return shutil.which(EXTERNAL_PREFIX + name)


def external_commands() -> dict[str, str]:
    """name -> path of every `pipelinectl-NAME` executable on PATH (the first one wins, as in a shell)."""
    found: dict[str, str] = {}
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        for filename in sorted(names):
            if not filename.startswith(EXTERNAL_PREFIX) or filename == EXTERNAL_PREFIX:
                continue
            path = os.path.join(folder or ".", filename)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                found.setdefault(filename[len(EXTERNAL_PREFIX):], path)
    return found


def external_env(connection_env: dict[str, str]) -> dict[str, str]:
    """The environment for an external plugin: ours plus the context's settings, never a secret."""
    env = dict(os.environ)
    for key, value in connection_env.items():
        if any(word in key.upper() for word in _SECRET_WORDS):
            continue  # a token never leaves through the environment
        env[key] = value
    return env


def run_external(name: str, args: list[str], connection_env: dict[str, str]) -> int:
    """Run `pipelinectl-NAME ARGS...` with the context's non-secret settings in its environment.

    Its exit code is ours; Ctrl-C reaches it (same process group) and ends us with 130.
    """
    import subprocess

    path = find_external(name)
    if path is None:
        raise UsageError(f"unknown command '{name}'", hint="see 'pipelinectl --help' and 'pipelinectl plugin list'")
    import signal

    env = external_env(connection_env)
    env["PIPELINECTL_PLUGIN"] = name
    try:
        child = subprocess.Popen([path, *args], env=env)
    except OSError as exc:
        from .errors import InternalError

        raise InternalError(f"external plugin '{path}' could not run: {exc.strerror or exc}") from None
    # The child shares our terminal: Ctrl-C is its to handle; we wait for its verdict.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return 128 - code if code < 0 else code  # killed by signal N -> 128+N, as shells report
