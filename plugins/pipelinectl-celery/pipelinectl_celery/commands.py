"""`pipelinectl celery ...`: what Celery's control API offers beyond the common verbs.

`workers` and `tasks` read (inspect broadcasts); `revoke` and `rate-limit` change the
workers (control broadcasts) through the same flow as the built-in verbs: validate, --dry-run,
confirmation for revoke, one audit line. The context is resolved by the core Session, so
`--context`, `-o` and `--timeout` behave as everywhere else. Celery is imported by the
driver's verbs only, never when this group's help is shown.
"""

from __future__ import annotations

from typing import Any

import typer

from pipelinectl.plugin_api import dry_run_option, yes_option

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def _group() -> None:
    """Celery specifics: workers, the tasks they hold, revoking stuck tasks, rate limits per task type.

    Examples:
      pipelinectl celery workers
      pipelinectl celery tasks --older-than 10m
      pipelinectl celery revoke --stuck-for 30m --terminate --yes
    """


def _plane():  # type: ignore[no-untyped-def]
    from pipelinectl.plugin_api import plane_for

    return plane_for("celery")


def _emit_rows(session: Any, kind: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Machine formats get `{kind}List` with items; tables one row per item."""
    fmt = session.options.output
    if fmt == "name":
        for row in rows:
            typer.echo(f"{kind.lower()}/{row.get('name') or row.get('id')}")
    elif fmt in ("table", "wide"):
        if not rows:
            typer.echo(f"No {kind} found.")
            return
        session.renderer.plain_table([h for h, _ in columns],
                                     [[_cell(row.get(key)) for _, key in columns] for row in rows])
    else:
        session.renderer.emit_mapping({"kind": f"{kind}List", "items": rows})


def _cell(value: Any) -> str:
    if value in (None, "", [], {}):
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


@app.command("workers")
def workers() -> None:
    """List the online workers: queues, pool size, tasks held, task types.

    Examples:
      pipelinectl celery workers
      pipelinectl celery workers -o json
    """
    session, plane = _plane()
    rows = plane.workers()
    _emit_rows(session, "CeleryWorker", rows, [
        ("NAME", "name"), ("QUEUES", "queues"), ("POOL", "pool_processes"), ("ACTIVE", "active"),
        ("RESERVED", "reserved"), ("SCHEDULED", "scheduled"), ("PROCESSED", "processed"),
    ])


_QUEUE = typer.Option(None, "--queue", "-q", metavar="QUEUE", help="Only tasks from this queue (stage).")


@app.command("tasks")
def tasks(
    queue: str | None = _QUEUE,
    state: list[str] = typer.Option(  # noqa: B006
        None, "--state", metavar="STATE", help="active, reserved or scheduled (repeatable; default: all)."),
    older_than: str | None = typer.Option(
        None, "--older-than", metavar="DURATION", help="Only active tasks running at least this long (e.g. 10m)."),
) -> None:
    """List the tasks the workers hold: running (active), prefetched (reserved), waiting for an ETA (scheduled).

    Examples:
      pipelinectl celery tasks --queue parse
      pipelinectl celery tasks --older-than 10m -o json
    """
    from pipelinectl.plugin_api import UsageError

    session, plane = _plane()
    states = tuple(state or ("active", "reserved", "scheduled"))
    unknown = [s for s in states if s not in ("active", "reserved", "scheduled")]
    if unknown:
        raise UsageError(f"invalid value for --state: '{unknown[0]}'", hint="choose from active, reserved, scheduled")
    rows = plane.tasks(queue, states, _seconds(older_than, "--older-than"))
    _emit_rows(session, "CeleryTask", rows, [
        ("ID", "id"), ("NAME", "name"), ("STATE", "state"), ("QUEUE", "queue"), ("WORKER", "worker"),
        ("RUNNING-S", "running_seconds"), ("ETA", "eta"),
    ])


def _seconds(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    from pipelinectl.plugin_api import parse_duration

    return parse_duration(value, option=option).total_seconds()


@app.command("revoke")
def revoke(
    task_ids: list[str] = typer.Argument(None, metavar="TASK_ID", help="Task ids to revoke.", show_default=False),
    stuck_for: str | None = typer.Option(
        None, "--stuck-for", metavar="DURATION",
        help="Revoke every active task running at least this long (e.g. 30m), instead of naming ids."),
    queue: str | None = _QUEUE,
    terminate: bool = typer.Option(False, "--terminate", help="Also kill the pool process running it (prefork)."),
    signal: str = typer.Option("SIGTERM", "--signal", metavar="SIG", help="Signal for --terminate."),
    dry_run: bool = dry_run_option(),
    yes: bool = yes_option(),
) -> None:
    """Revoke tasks on every online worker: not started ones are skipped, running ones killed with --terminate.

    Always asks first (off a terminal it needs --yes). A revoke lives in the memory of the
    workers that heard it (and their --statedb): a worker started later does not know it.

    Examples:
      pipelinectl celery revoke 5c0f1e9a-... --yes
      pipelinectl celery revoke --stuck-for 30m --terminate --dry-run
      pipelinectl celery revoke --stuck-for 1h --queue parse --terminate --yes
    """
    from pipelinectl.plugin_api import UsageError, dry_run_note, mutate, say

    session, plane = _plane()
    import signal as signals

    if terminate and signal.upper() not in {s.name for s in signals.Signals}:
        raise UsageError(f"'{signal}' is not a signal name", hint="e.g. SIGTERM, SIGKILL, SIGUSR1")
    if bool(task_ids) == bool(stuck_for):
        raise UsageError("name task ids, or give --stuck-for DURATION (not both)")
    if queue and not stuck_for:
        raise UsageError("--queue selects stuck tasks: use it with --stuck-for")
    ids = list(dict.fromkeys(task_ids or []))
    if stuck_for:
        ids = [t["id"] for t in plane.tasks(queue, ("active",), _seconds(stuck_for, "--stuck-for"))]
        if not ids:
            session.info(f"no active task has been running for {stuck_for} or longer; nothing to revoke")
            _emit_revoke(session, {"kind": "CeleryRevoke", "ids": [], "dry_run": dry_run})
            return
    what = f"revoke {len(ids)} task{'s' if len(ids) != 1 else ''}" + (" and terminate them" if terminate else "")
    outcome = plane.revoke(ids, terminate=terminate, signal=signal.upper(), dry_run=True)  # checks before acting
    if dry_run:
        dry_run_note(session, f"would {what} on {len(outcome['workers'])} workers")
        _emit_revoke(session, outcome)
        return
    session.confirm(what, yes=yes)
    outcome = mutate(session, verb="celery revoke", target=",".join(ids),
                     arguments={"ids": ids, "terminate": terminate, "signal": signal.upper(), "stuck_for": stuck_for},
                     call=lambda: plane.revoke(ids, terminate=terminate, signal=signal.upper()),
                     summary=lambda r: f"revoked on {len(r.get('revoked_on', []))}/{len(r['workers'])} workers")
    say(session, f"{what}: acknowledged by {', '.join(outcome['acknowledged'])}")
    _emit_revoke(session, outcome)


def _emit_revoke(session: Any, outcome: dict[str, Any]) -> None:
    fmt = session.options.output
    if fmt == "name":
        for task_id in outcome.get("ids", []):
            typer.echo(f"celerytask/{task_id}")
    elif fmt in ("table", "wide"):
        for task_id in outcome.get("ids", []):
            typer.echo(f"  {task_id}")
    else:
        session.renderer.emit_mapping(outcome)


@app.command("rate-limit")
def rate_limit(
    task: str = typer.Argument(..., metavar="TASK", help="The task type (its registered name)."),
    rate: str = typer.Argument(..., metavar="RATE", help="N, N/s, N/m or N/h per worker; 0 or none removes it."),
    dry_run: bool = dry_run_option(),
) -> None:
    """Set a task type's rate limit on every online worker that has it (Celery's rate_limit control).

    The limit is per worker and lasts until the worker restarts (then the task's own
    rate_limit applies again). 'pipelinectl status -o wide' shows the limits in force.

    Examples:
      pipelinectl celery rate-limit tasks.charge 10/m
      pipelinectl celery rate-limit tasks.charge none
    """
    from pipelinectl.plugin_api import dry_run_note, mutate, say

    session, plane = _plane()
    outcome = plane.rate_limit(task, rate, dry_run=True)  # validates task and rate before anything is sent
    if dry_run:
        dry_run_note(session, f"would set the rate limit of {task} to {outcome['rate_limit'] or 'none'} "
                              f"on {len(outcome['workers'])} workers")
    else:
        outcome = mutate(session, verb="celery rate-limit", target=task, arguments={"task": task, "rate": rate},
                         call=lambda: plane.rate_limit(task, rate),
                         summary=lambda r: f"rate_limit={r['rate_limit']} on {len(r['workers'])} workers")
        say(session, f"rate limit of {task}: {outcome['rate_limit'] or 'none'} on {', '.join(outcome['workers'])}")
    if session.options.output not in ("table", "wide"):
        session.renderer.emit_mapping(outcome)
