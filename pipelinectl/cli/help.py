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
