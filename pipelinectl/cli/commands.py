"""The lazy command table: name -> where it lives and what it does, pip style.

Top-level help and completion of command names need only this table; a
command's module is imported when that command runs. Keep this module free of
imports: it is read on every invocation, `--help` included.
"""

from __future__ import annotations

from typing import NamedTuple


class CommandSpec(NamedTuple):
    target: str  # "module:attr"; attr is a typer.Typer (a group) or a function (a command)
    summary: str
    section: str
    alias_of: str | None = None


COMMANDS: dict[str, CommandSpec] = {
    # Inspect
    "status": CommandSpec("pipelinectl.cli.status:status", "Show pipelines and stages at a glance", "Inspect"),
    "wait": CommandSpec("pipelinectl.cli.wait:wait", "Wait until a condition holds (state, depth, DLQ count, saga, replay)", "Inspect"),
    "ui": CommandSpec("pipelinectl.cli.ui:ui", "Serve the web dashboard on 127.0.0.1 (graph, live metrics, DLQ, sagas)", "Inspect"),
    # Stage control
    "pause": CommandSpec("pipelinectl.cli.stage:pause", "Stop a stage taking new items; in-flight items finish", "Control stages"),
    "resume": CommandSpec("pipelinectl.cli.stage:resume", "Let a paused or draining stage take items again", "Control stages"),
    "drain": CommandSpec("pipelinectl.cli.stage:drain", "Let a stage empty its queue, then pause it", "Control stages"),
    "scale": CommandSpec("pipelinectl.cli.stage:scale", "Set a stage's parallelism, live", "Control stages"),
    "resize": CommandSpec("pipelinectl.cli.stage:scale", "Alias of scale", "Control stages", alias_of="scale"),
    "limit": CommandSpec("pipelinectl.cli.stage:limit", "Set or clear a stage's rate limit, live", "Control stages"),
    "disable": CommandSpec("pipelinectl.cli.stage:disable", "Bypass a stage: items flow on unprocessed, recorded", "Control stages"),
    "enable": CommandSpec("pipelinectl.cli.stage:enable", "Turn a disabled stage back on", "Control stages"),
    "replay": CommandSpec("pipelinectl.cli.replay:app", "Replay an input range or a disabled stage's skipped items; list, show, cancel", "Control stages"),
    # Dead letters and sagas
    "dlq": CommandSpec("pipelinectl.cli.dlq:app", "List, inspect, redrive and purge dead-letter items", "Dead letters and sagas"),
    "saga": CommandSpec("pipelinectl.cli.saga:app", "List and inspect sagas; force-fail, retry, cancel, advance one", "Dead letters and sagas"),
    "audit": CommandSpec("pipelinectl.cli.audit:audit", "Show the audit trail: every state change and who made it", "Inspect"),
    # Runbooks
    "apply": CommandSpec("pipelinectl.cli.plans:apply", "Perform exactly a plan made with VERB --dry-run -o yaml", "Runbooks and drills"),
    "drill": CommandSpec("pipelinectl.cli.drill:app", "Run and validate drill files (CI incident rehearsals)", "Runbooks and drills"),
    # Set-up
    "config": CommandSpec("pipelinectl.cli.config:app", "Manage contexts: which control plane, how to reach it", "Set-up"),
    "demo": CommandSpec("pipelinectl.cli.demo:app", "Start the embedded demo control plane and select it", "Set-up"),
    "server": CommandSpec("pipelinectl.cli.server:server", "Run the reference control plane in the foreground", "Set-up"),
    "plugin": CommandSpec("pipelinectl.cli.plugin:app", "List installed plugins and what their drivers support", "Set-up"),
    "completion": CommandSpec("pipelinectl.cli.completion:completion", "Print the shell completion script (bash, zsh, fish)", "Set-up"),
    "version": CommandSpec("pipelinectl.cli.version:version", "Show the client version and the control plane's", "Set-up"),
}

# Every command's click settings. Help is laid out for 80 columns, like a man page, whatever the
# terminal's width (narrower terminals get it rewrapped), so built-in help can be served as
# generated (cli/_help_data.py) without building the command tree.
HELP_WIDTH = 80
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": HELP_WIDTH}

SECTIONS = ("Inspect", "Control stages", "Dead letters and sagas", "Runbooks and drills", "Set-up")
