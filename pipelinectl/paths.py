"""XDG paths of pipelinectl's files, with nothing but os and pathlib imported.

Kept apart from config.py so shell completion (which runs on every Tab) can find
the config and cache files without importing the config machinery.
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def config_path(explicit: str | None = None) -> Path:
    """--config, then PIPELINECTL_CONFIG, then $XDG_CONFIG_HOME/pipelinectl/config.yaml."""
    chosen = explicit or os.environ.get("PIPELINECTL_CONFIG")
    if chosen:
        return Path(chosen).expanduser()
    return _xdg("XDG_CONFIG_HOME", ".config") / "pipelinectl" / "config.yaml"


def state_dir() -> Path:
    """$XDG_STATE_HOME/pipelinectl: audit log, demo server pid and logs."""
    return _xdg("XDG_STATE_HOME", ".local/state") / "pipelinectl"


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/pipelinectl: things that can be rebuilt (help's plugin list)."""
    return _xdg("XDG_CACHE_HOME", ".cache") / "pipelinectl"
