"""`pipelinectl nats ...`: JetStream set-up that has no place in the common verbs.

`dlq setup` creates the dead-letter stream the driver's `dlq` verbs read
(see dlq.py for the convention). The context is resolved by the core Session,
so `--context`, `-o` and `--timeout` behave as everywhere else.
"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)
dlq_app = typer.Typer(no_args_is_help=True, add_completion=False)
app.add_typer(dlq_app, name="dlq")


@app.callback()
def _group() -> None:
    """NATS JetStream specifics: the dead-letter stream convention (stages use the common verbs).

    Examples:
      pipelinectl nats dlq setup
    """


@dlq_app.callback()
def _dlq_group() -> None:
    """The dead-letter stream that records JetStream's max-delivery and terminated advisories.

    Examples:
      pipelinectl nats dlq setup --dry-run
    """


def _plane():  # type: ignore[no-untyped-def]
    from pipelinectl.plugin_api import plane_for

    return plane_for("nats")


@dlq_app.command("setup")
def dlq_setup(
    pipelines: list[str] = typer.Option(  # noqa: B006
        None, "-p", "--pipeline", metavar="STREAM",
        help="Stream whose dead letters to record (repeatable; default: the context's pipeline streams)."),
    max_age: str = typer.Option("14d", "--max-age", help="Keep entries this long (e.g. 36h, 14d)."),
    replicas: int = typer.Option(1, "--replicas", min=1, max=5, help="Replicas of the DLQ stream (clustered servers)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be created or added; change nothing."),
) -> None:
    """Create or extend the dead-letter stream that records max-delivery and terminated advisories.

    The stream (default PIPELINECTL_DLQ, or the context's `dlq_stream` setting) captures
    $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.* and ...MSG_TERMINATED.<stream>.*
    for each pipeline stream. Safe to run again: it only adds what is missing.

    Examples:
      pipelinectl nats dlq setup
      pipelinectl nats dlq setup -p ORDERS -p PAYMENTS --max-age 30d
      pipelinectl nats dlq setup --dry-run -o json
    """
    session, plane = _plane()
    streams = [s for p in (pipelines or []) for s in p.split(",") if s.strip()] or None
    from pipelinectl.plugin_api import parse_duration

    age = parse_duration(max_age, option="--max-age")
    result = session_call(session, plane, streams, age, replicas, dry_run)
    if session.options.output == "name":
        typer.echo(result["stream"])
    elif session.options.output in ("table", "wide"):
        verb = {"created": "created", "updated": "extended", "unchanged": "already covers these streams:"}[result["action"]]
        prefix = "dry run: would have " if dry_run and result["action"] != "unchanged" else ""
        typer.echo(f"{prefix}{verb} dead-letter stream {result['stream']}"
                   + (f" for {', '.join(result['pipelines'])}" if result["action"] != "unchanged"
                      else f" {', '.join(result['pipelines'])}"))
        for subject in result["subjects"]:
            typer.echo(f"  {subject}")
        if dry_run:
            typer.echo("nothing was changed")
    else:
        session.renderer.emit_mapping(result)


def session_call(session, plane, streams, age, replicas, dry_run):  # type: ignore[no-untyped-def]
    """Run the set-up and write its audit line (dry runs change nothing and are not audited)."""
    if dry_run:
        return plane.dlq_setup(streams, max_age=age, replicas=replicas, dry_run=True)
    from pipelinectl.plugin_api import mutate

    return mutate(session, verb="nats dlq setup", target=plane.dlq_stream,
                  arguments={"pipelines": streams, "max_age": str(age), "replicas": replicas},
                  call=lambda: plane.dlq_setup(streams, max_age=age, replicas=replicas),
                  summary=lambda r: r["action"])
