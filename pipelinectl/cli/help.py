"""Top-level help, printed from the command table without importing typer or rich."""

from __future__ import annotations

from .commands import COMMANDS, SECTIONS
from .options import GLOBAL_OPTIONS_HELP

EXAMPLES = (
    "pipelinectl demo                          # start the embedded control plane and select it",
    "pipelinectl status                        # pipelines, stages, health at a glance",
    "pipelinectl pause validate -p orders      # stop a stage taking new items",
    "pipelinectl dlq list --error-kind validation -o jsonl",
)


def top_level_help(plugin_commands: dict[str, str] | None = None) -> str:
    width = max(len(name) for name in COMMANDS) + 2
    lines = [
        "pipelinectl: operate data and event pipelines from one command tree.",
        "",
        "Usage: pipelinectl [GLOBAL OPTIONS] COMMAND [ARGS]...",
        "",
    ]
    for section in SECTIONS:
        lines.append(f"{section}:")
        for name, spec in COMMANDS.items():
            if spec.section == section:
                lines.append(f"  {name:<{width}}{spec.summary}")
        lines.append("")
    if plugin_commands is None:
        plugin_commands = _plugin_summaries()
    if plugin_commands:
        lines.append("Plugin commands:")
        for name, summary in sorted(plugin_commands.items()):
            lines.append(f"  {name:<{width}}{summary}")
        lines.append("")
    lines.append("Global options (accepted before or after the command):")
    opt_width = max(len(flag) for flag, _ in GLOBAL_OPTIONS_HELP) + 2
    for flag, text in GLOBAL_OPTIONS_HELP:
        lines.append(f"  {flag:<{opt_width}}{text}")
    lines.append(f"  {'--version':<{opt_width}}print the version and exit")
    lines.append("")
    lines.append("Examples:")
    lines.extend(f"  {example}" for example in EXAMPLES)
    lines.append("")
    lines.append("Run 'pipelinectl COMMAND --help' for a command's options and examples.")
    lines.append("Exit codes: 'man pipelinectl' or the README; 0 means success.")
    return "\n".join(lines) + "\n"


def _plugin_summaries() -> dict[str, str]:
    """Command groups registered by installed plugins (metadata only), cached pip style.

    Scanning every distribution's entry points costs more than the rest of `--help`;
    the answer only changes when something is installed, so it is kept in the cache
    dir keyed by the mtimes of sys.path entries. In a process that has already
    imported the registry (tests registering plugins), the registry is asked directly.
    """
    import sys

    if "pipelinectl.plugins" in sys.modules:
        return _scan_plugins()
    import json

    path, key = _cache_file(), _cache_key()
    try:
        with open(path, encoding="utf-8") as fh:
            cached = json.load(fh)
        if cached.get("key") == key and isinstance(cached.get("commands"), dict):
            return {str(k): str(v) for k, v in cached["commands"].items()}
    except (OSError, ValueError, AttributeError):
        pass
    found = _scan_plugins()
    try:
        import os

        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"key": key, "commands": found}, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs speed
    return found


def _scan_plugins() -> dict[str, str]:
    try:
        from pipelinectl.plugins import command_entries

        return {name: entry.summary or f"commands from {entry.distribution}" for name, entry in command_entries().items()}
    except Exception:  # a broken plugin's metadata never breaks help
        return {}


def _cache_file() -> str:
    import os

    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pipelinectl", "help-plugins.json")


def _cache_key() -> list[object]:
    """What decides the installed plugins: the interpreter, its path entries' mtimes, the plugin filter."""
    import os
    import sys

    stamps: list[object] = [sys.executable, os.environ.get("PIPELINECTL_LOAD_PLUGINS")]
    for entry in sys.path:
        if "-packages" not in entry:  # installs land in site-/dist-packages; skip cwd and script dirs
            continue
        try:
            stamps.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            stamps.append([entry, None])
    return stamps
