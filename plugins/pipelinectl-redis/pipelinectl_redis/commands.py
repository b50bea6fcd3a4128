"""`pipelinectl redis ...`: Redis Streams specifics that have no place in the common verbs.

- `dlq setup` writes the dead-letter convention into the stage hashes (conventions.py).
- `dlq sweep` moves entries due for the DLQ now: for cron or a worker's timer (the `dlq`
  verbs sweep by themselves before they read).
- `replay` replays an exact stream-id range (the common `replay` takes times, or whole
  milliseconds as offsets).

The context is resolved by the core Session, so `--context`, `-o` and `--timeout`
behave as everywhere else.
"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)
dlq_app = typer.Typer(no_args_is_help=True, add_completion=False)
app.add_typer(dlq_app, name="dlq")


@app.callback()
def _group() -> None:
    """Redis Streams specifics: the dead-letter convention, its sweep, and replays by exact stream id.

    Examples:
      pipelinectl redis dlq setup --max-deliveries 5
      pipelinectl redis dlq sweep
      pipelinectl redis replay -s parse --from-id 1715000000000-3 --to-id 1715000000100-0 --dry-run
    """


@dlq_app.callback()
def _dlq_group() -> None:
    """The dead-letter streams: one per stage, filled with entries delivered too often without an ack.

    Examples:
      pipelinectl redis dlq setup --dry-run
      pipelinectl redis dlq sweep -o json
    """


def _plane():  # type: ignore[no-untyped-def]
    from pipelinectl.plugin_api import plane_for

    return plane_for("redis")


def _pipeline_option():  # type: ignore[no-untyped-def]
    return typer.Option(None, "-p", "--pipeline", metavar="PIPELINE", help="The pipeline (default: the context's).")


@dlq_app.command("setup")
def dlq_setup(
    stages: list[str] = typer.Option(  # noqa: B006
        None, "-s", "--stage", metavar="STAGE", help="Stage (consumer group) to set up (repeatable; default: every stage)."),
    pipeline: str | None = _pipeline_option(),
    max_deliveries: int = typer.Option(5, "--max-deliveries", min=1, metavar="N",
                                       help="Dead-letter an entry once it was delivered N times without an ack."),
    min_idle: str = typer.Option("60s", "--min-idle", metavar="DURATION",
                                 help="...and has been idle this long (its last delivery may still be working)."),
    dlq_stream: str | None = typer.Option(None, "--dlq-stream", metavar="STREAM",
                                          help="DLQ stream of the one --stage given (default STREAM:dlq:GROUP)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be written; change nothing."),
) -> None:
    """Set up the dead-letter convention: each stage's DLQ stream, max deliveries and min idle.

    Written into the stage hash pipelinectl:stage:{STREAM}:GROUP (fields dlq_stream,
    max_deliveries, min_idle_ms), where the sweep reads it. Safe to run again.

    Examples:
      pipelinectl redis dlq setup
      pipelinectl redis dlq setup -s parse --max-deliveries 3 --min-idle 5m
      pipelinectl redis dlq setup -s parse --dlq-stream orders:dead --dry-run -o json
    """
    from pipelinectl.plugin_api import mutate, parse_duration

    session, plane = _plane()
    idle_ms = int(parse_duration(min_idle, option="--min-idle", allow_zero=True).total_seconds() * 1000)
    target = session.pipeline(pipeline)

    def run(dry: bool):  # type: ignore[no-untyped-def]
        return plane.dlq_setup(target, stages or None, max_deliveries=max_deliveries, min_idle_ms=idle_ms,
                               dlq_stream=dlq_stream, dry_run=dry)

    if dry_run:
        result = run(True)
    else:
        result = mutate(session, verb="redis dlq setup", target=f"{target}/dlq",
                        arguments={"stages": stages, "max_deliveries": max_deliveries, "min_idle_ms": idle_ms,
                                   "dlq_stream": dlq_stream},
                        call=lambda: run(False),
                        summary=lambda r: ", ".join(f"{s['stage']}={s['action']}" for s in r["stages"]))
    fmt = session.options.output
    if fmt == "name":
        for s in result["stages"]:
            typer.echo(s["dlq_stream"])
    elif fmt in ("table", "wide"):
        prefix = "dry run: would have " if dry_run else ""
        for s in result["stages"]:
            action = {"created": "set up", "updated": "updated", "unchanged": "already has"}[s["action"]]
            typer.echo(f"{'' if s['action'] == 'unchanged' else prefix}{action} stage {s['stage']}: dead letters to {s['dlq_stream']} after "
                       f"{s['max_deliveries']} deliveries idle {s['min_idle_ms'] // 1000}s ({s['stage_key']})")
        if dry_run:
            typer.echo("nothing was changed")
    else:
        session.renderer.emit_mapping(result)


@dlq_app.command("sweep")
def dlq_sweep(
    stage: str | None = typer.Option(None, "-s", "--stage", metavar="STAGE", help="Only this stage."),
    pipeline: str | None = _pipeline_option(),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count the entries due; move nothing."),
) -> None:
    """Move entries due now (delivered max-deliveries times, idle min-idle) to their DLQ streams.

    Each entry moves in one script (XADD to the DLQ stream + XACK on the group), so it
    is never lost and never in both places. Run it from cron or a worker's timer; the
    'dlq list' verbs also sweep before they read.

    Examples:
      pipelinectl redis dlq sweep
      pipelinectl redis dlq sweep -s parse --dry-run -o json
    """
    from pipelinectl.plugin_api import dry_run_note, mutate

    session, plane = _plane()
    target = session.pipeline(pipeline)
    if dry_run:
        result = plane.sweep(target, stage, dry_run=True)
        dry_run_note(session, f"the sweep would move {result['would_move']} entries")
    else:
        result = mutate(session, verb="redis dlq sweep", target=f"{target}/dlq", arguments={"stage": stage},
                        call=lambda: plane.sweep(target, stage), summary=lambda r: f"moved={r['moved']}")
    fmt = session.options.output
    if fmt in ("table", "wide"):
        key = "would_move" if dry_run else "moved"
        for s in result["stages"]:
            typer.echo(f"{s['stage']}: {s[key]} {'would move' if dry_run else 'moved'} to {s['dlq_stream']}")
    else:
        session.renderer.emit_mapping(result)


@app.command("replay")
def replay(
    stage: str | None = typer.Option(None, "-s", "--stage", metavar="STAGE",
                                     help="Replay into this stage (default: the pipeline's first)."),
    from_id: str = typer.Option(..., "--from-id", metavar="ID", help="First stream id (inclusive): MS-SEQ or MS."),
    to_id: str | None = typer.Option(None, "--to-id", metavar="ID",
                                     help="End stream id (exclusive); default: up to the stage's last delivered entry."),
    pipeline: str | None = _pipeline_option(),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count exactly what would be replayed; change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask (needed off a terminal)."),
) -> None:
    """Replay an exact stream-id range into one stage (consumer group).

    A range that reaches the stage's last delivered id rewinds the group (XGROUP SETID:
    only this group sees the entries again, nothing is copied). A range that ends
    before it is republished: copies are added to the stream with pipelinectl:replay-of
    and pipelinectl:for-group, each original at most once per stage (dedupe window:
    setting replay_dedupe_seconds, default 7 days).

    Examples:
      pipelinectl redis replay -s parse --from-id 1715000000000-0 --dry-run
      pipelinectl redis replay -s parse --from-id 1715000000000-3 --to-id 1715000000100-0 --yes
    """
    from pipelinectl.plugin_api import dry_run_note, mutate, say

    session, plane = _plane()
    target = session.pipeline(pipeline)
    plan = plane.replay_ids(target, stage, from_id, to_id, dry_run=True)
    how = _how(plan.id)
    count = plan.total - plan.skipped
    what = f"{count} entr{'y' if count == 1 else 'ies'} of pipeline '{target}' into stage '{plan.stage}' ({how})"
    if dry_run:
        dry_run_note(session, f"replay would send {what}"
                     + (f"; {plan.skipped} already replayed would be skipped" if plan.skipped else ""))
        session.emit(plan)
        return
    if count <= 0:
        from pipelinectl.plugin_api import UsageError

        raise UsageError(f"nothing to replay: no entry of {from_id}..{to_id or 'last delivered'} was delivered to "
                         f"stage '{plan.stage}' and not replayed already; nothing was changed")
    session.confirm(f"replay {what}", yes=yes)
    job = mutate(session, verb="redis replay", target=f"{target}/{plan.stage}",
                 arguments={"stage": stage, "from_id": from_id, "to_id": to_id, "planned": plan.total},
                 call=lambda: plane.replay_ids(target, stage, from_id, to_id),
                 summary=lambda j: f"job {j.id} {j.state} replayed={j.replayed} skipped={j.skipped}")
    say(session, f"replay {job.id} {job.state}: {job.replayed} replayed, {job.skipped} skipped (already replayed)")
    session.emit(job)


def _how(job_id: str) -> str:
    if job_id.startswith("rewind-"):
        return "rewind of the consumer group"
    if job_id.startswith("republish-"):
        return "republished copies"
    return "nothing delivered yet in that range"
