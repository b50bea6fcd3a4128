"""Plugin registry: drivers and command groups, discovered without importing them.

Two entry-point groups:

- ``pipelinectl.drivers``: ``NAME = "module:factory"``; ``factory(Connection)``
  returns a ControlPlane. A context's ``driver: NAME`` selects it.
- ``pipelinectl.commands``: ``NAME = "module:app"``; a typer app mounted as
  ``pipelinectl NAME ...``.

Discovery reads distribution metadata only; a plugin's module is imported when
its driver is used or its command runs. A plugin that fails to import is
reported (``plugin list``, a warning naming it) and never breaks other commands.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .errors import UsageError

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
        module_name, _, attr = self.target.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
        return obj


@lru_cache(maxsize=None)
def _entries(group: str) -> tuple[PluginEntry, ...]:
    from importlib.metadata import entry_points

    kind = "driver" if group == DRIVER_GROUP else "command"
    found = []
    for ep in entry_points(group=group):
        dist = ep.dist
        found.append(
            PluginEntry(
                name=ep.name,
                kind=kind,
                target=ep.value,
                distribution=dist.name if dist else "?",
                version=dist.version if dist else "",
                summary=(dist.metadata.get("Summary") or "") if dist else "",
            )
        )
    return tuple(sorted(found, key=lambda e: e.name))


def driver_entries() -> dict[str, PluginEntry]:
    entries = {name: PluginEntry(name, "driver", target) for name, target in BUILTIN_DRIVERS.items()}
    for entry in _entries(DRIVER_GROUP):
        entries.setdefault(entry.name, entry)
    return entries


def command_entries() -> dict[str, PluginEntry]:
    return {entry.name: entry for entry in _entries(COMMAND_GROUP)}


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
    try:
        factory = entry.load()
    except Exception as exc:  # a broken plugin is named, never a traceback
        from .errors import InternalError

        raise InternalError(
            f"driver plugin '{entry.name}' ({entry.distribution}) failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    return factory(connection)


def find_external(name: str) -> str | None:
    """Path of an executable `pipelinectl-NAME` on PATH (git/kubectl style plugins)."""
    import shutil

    if not name or "/" in name or name.startswith("-"):
        return None
    return shutil.which(f"pipelinectl-{name}")


def run_external(name: str, args: list[str], env: dict[str, str]) -> int:
    """Run `pipelinectl-NAME ARGS...` with the context's non-secret settings in its environment."""
    import os
    import subprocess

    path = find_external(name)
    if path is None:
        raise UsageError(f"unknown command '{name}'")
    return subprocess.call([path, *args], env={**os.environ, **env})
