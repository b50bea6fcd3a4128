"""The installed plugins' entry points, read from distribution metadata once per installation change.

Reading every distribution's metadata (importlib.metadata) costs about 0.1 s, more than
the rest of a read command. The answer changes only when something is installed or
removed, so it is kept in `$XDG_CACHE_HOME/pipelinectl/plugins.json`, keyed by
`install_stamp()`: the interpreter and each `sys.path` entry with its mtime. An
installer adds or removes a `*.dist-info` directory in a site directory (changing its
mtime), and a different PYTHONPATH is a different list of entries, so either starts a
fresh scan. As git does for its index, a directory changed in the last two seconds is
not trusted to key the cache (a change within the same mtime tick would go unseen). A cache that cannot be read or written only costs speed.

Rows are plain dicts (`name`, `value`, `distribution`, `version`, `summary`, or
`error` for malformed metadata) so this module imports nothing heavy: top-level help
and completion use it too. `pipelinectl.plugins` turns rows into PluginEntry objects
and applies PIPELINECTL_LOAD_PLUGINS.
"""

from __future__ import annotations

import os
import sys
from typing import Any

GROUPS = ("pipelinectl.drivers", "pipelinectl.commands")
LOAD_PLUGINS_ENV = "PIPELINECTL_LOAD_PLUGINS"
_FORMAT = 1
RACY_NS = 2_000_000_000  # a stamp younger than this is not trusted to key the cache

_memo: dict[str, list[dict[str, str]]] | None = None


def allowed(entry_name: str, distribution: str) -> bool:
    """PIPELINECTL_LOAD_PLUGINS, when set, names the plugins or distributions to load (empty: none)."""
    listed = os.environ.get(LOAD_PLUGINS_ENV)
    if listed is None:
        return True
    names = {n.strip() for n in listed.split(",") if n.strip()}
    return entry_name in names or distribution in names


def install_stamp() -> list[Any]:
    """What decides which distributions are installed: the interpreter, sys.path and its entries' mtimes."""
    stamps: list[Any] = [sys.executable]
    for entry in sys.path:
        try:
            stamps.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            stamps.append([entry, None])
    return stamps


def rows(group: str) -> list[dict[str, str]]:
    """Every entry point of `group` in installed distributions (unfiltered), from the cache when fresh."""
    global _memo
    if _memo is None:
        _memo = _load()
    return _memo.get(group, [])


def forget() -> None:
    """Scan again at the next call (after installing something in-process, or in tests)."""
    global _memo
    _memo = None


def _load() -> dict[str, list[dict[str, str]]]:
    import json

    path, key = cache_file(), install_stamp()
    try:
        with open(path, encoding="utf-8") as fh:
            cached = json.load(fh)
        if cached.get("format") == _FORMAT and cached.get("key") == key and isinstance(cached.get("groups"), dict):
            return cached["groups"]
    except (OSError, ValueError, AttributeError):
        pass
    groups = scan()
    if _racy(key):
        return groups  # a directory changed a moment ago: a change within its mtime's tick could go unseen
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"format": _FORMAT, "key": key, "groups": groups}, fh)
        os.replace(tmp, path)
    except OSError:
        pass
    return groups


def _racy(key: list[Any]) -> bool:
    """Git's "racily clean" rule: an mtime this recent may not yet reflect every change."""
    import time

    now = time.time_ns()
    return any(isinstance(stamp, list) and stamp[1] is not None and now - stamp[1] < RACY_NS for stamp in key)


def scan() -> dict[str, list[dict[str, str]]]:
    """Read the entry points from distribution metadata (the slow part)."""
    from importlib.metadata import entry_points

    groups: dict[str, list[dict[str, str]]] = {}
    for group in GROUPS:
        found: list[dict[str, str]] = []
        for ep in entry_points(group=group):
            try:
                dist = ep.dist
                found.append({
                    "name": ep.name,
                    "value": ep.value,
                    "distribution": dist.name if dist else "?",
                    "version": dist.version if dist else "",
                    "summary": (dist.metadata.get("Summary") or "") if dist else "",
                })
            except Exception as exc:  # malformed metadata: reported by `plugin list`, the others kept
                found.append({"name": getattr(ep, "name", "?"), "error": f"{type(exc).__name__}: {exc}"})
        groups[group] = found
    return groups


def cache_file() -> str:
    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pipelinectl", "plugins.json")
