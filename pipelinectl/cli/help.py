"""Help without building the command tree: the top level from the command table, a built-in
command's from the text generated for it (cli/_help_data.py), so neither imports typer or rich."""

from __future__ import annotations

from .commands import COMMANDS, HELP_WIDTH, SECTIONS
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


def command_help(path: list[str]) -> str | None:
    """`pipelinectl PATH --help` of a built-in command as generated, or None when the tree must render it.

    The text is laid out for HELP_WIDTH columns, the width every command's help has on a
    terminal at least that wide (and when piped); a narrower terminal gets it rendered.
    """
    if not path or path[0] not in COMMANDS or any(word.startswith("-") for word in path):
        return None
    if _columns() < HELP_WIDTH:
        return None
    from ._help_data import HELP

    return HELP.get(" ".join(path))


def _columns() -> int:
    """The terminal's width as click sees it (shutil.get_terminal_size): COLUMNS, the terminal, else 80."""
    import os
    import sys

    try:
        columns = int(os.environ.get("COLUMNS", ""))
        if columns > 0:
            return columns
    except ValueError:
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def _plugin_summaries() -> dict[str, str]:
    """Command groups registered by installed plugins, from metadata only (plugin_index caches it).

    In a process that has already imported the registry (tests registering plugins),
    the registry is asked, so in-process registrations show too.
    """
    import sys

    try:
        if "pipelinectl.plugins" in sys.modules:
            from pipelinectl.plugins import command_entries

            return {name: entry.summary or f"commands from {entry.distribution}"
                    for name, entry in command_entries().items()}
        from pipelinectl import plugin_index

        return {row["name"]: row["summary"] or f"commands from {row['distribution']}"
                for row in plugin_index.rows("pipelinectl.commands")
                if "error" not in row and plugin_index.allowed(row["name"], row["distribution"])}
    except Exception:  # a broken plugin's metadata never breaks help
        return {}
