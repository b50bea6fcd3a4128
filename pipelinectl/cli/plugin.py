"""`pipelinectl plugin list`: what is installed, what each driver can do, what failed to load."""

from __future__ import annotations

import sys

import typer

from .session import current

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def _group() -> None:
    """List installed plugins and what their drivers support (more subcommands may follow).

    Examples:
      pipelinectl plugin list
      pipelinectl plugin list --errors
    """


def _register_columns() -> None:
    """Teach the shared renderer the Plugin table (kept here, next to the only command showing it)."""
    from pipelinectl.output import COLUMNS, Column, clip_text

    COLUMNS.setdefault("Plugin", [
        Column("NAME", lambda p: p.name),
        Column("TYPE", lambda p: p.type),
        Column("VERSION", lambda p: p.version or "-"),
        Column("FROM", lambda p: "built in" if p.builtin else p.distribution),
        Column("SUPPORTS", lambda p: _supports(p)),
        Column("ERROR", lambda p: clip_text(p.error, 60) if p.error else "-"),
        Column("TARGET", lambda p: p.target, wide_only=True),
    ])


def _supports(plugin) -> str:  # type: ignore[no-untyped-def]
    if plugin.type != "driver":
        return "-"
    if plugin.capabilities is None:
        return "?" if plugin.error else "(not declared)"
    return _compact(plugin.capabilities) or "(nothing)"


def _compact(capabilities: list[str]) -> str:
    """'dlq-list, dlq-show, pause, pause-until' -> 'dlq(list, show), pause(+until)': a table cell, not a paragraph."""
    families = ("dlq", "saga", "replay", "pause")
    groups: dict[str, list[str]] = {}
    for cap in capabilities:
        head, _, rest = cap.partition("-")
        if head in families and rest:
            groups.setdefault(head, []).append(rest)
        else:
            groups.setdefault(cap, [])
    parts = []
    for head, rests in groups.items():
        if not rests:
            parts.append(head)
        elif head in capabilities:  # the verb itself plus options of it
            parts.append(f"{head}(+{', +'.join(rests)})")
        else:
            parts.append(f"{head}({', '.join(rests)})")
    return ", ".join(parts)


@app.command("list")
def list_plugins(
    drivers: bool = typer.Option(False, "--drivers", help="Only drivers."),
    errors: bool = typer.Option(False, "--errors", help="Only plugins that failed to load."),
) -> None:
    """List drivers, command groups and pipelinectl-NAME executables, with versions and verbs.

    A plugin that fails to load is listed with its error and named in a warning on
    stderr; the listing itself still succeeds.

    Examples:
      pipelinectl plugin list
      pipelinectl plugin list --drivers -o json
    """
    from pipelinectl import plugins

    session = current()
    found = plugins.list_plugins()
    if drivers:
        found = [p for p in found if p.type == "driver"]
    if errors:
        found = [p for p in found if p.error]
    for plugin in found:
        if plugin.error:
            where = "built in" if plugin.builtin else plugin.distribution
            sys.stderr.write(f"warning: {plugin.type} plugin '{plugin.name}' ({where}) failed to load: "
                             f"{session.redact(plugin.error)}\n")
    _register_columns()
    from pipelinectl.model import ResourceList

    session.emit(ResourceList(kind="PluginList", items=found))
