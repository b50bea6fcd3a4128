"""`pipelinectl rabbitmq ...`: RabbitMQ set-up that has no place in the common verbs.

`dlq setup` gives stages the dead-letter queue the driver's `dlq` verbs read (see
driver.dlq_setup for the convention). The context is resolved by the core Session, so
`--context`, `-o` and `--timeout` behave as everywhere else.
"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)
dlq_app = typer.Typer(no_args_is_help=True, add_completion=False)
app.add_typer(dlq_app, name="dlq")


@app.callback()
def _group() -> None:
    """RabbitMQ specifics: dead-letter queues for stages (stages use the common verbs).

    Examples:
      pipelinectl rabbitmq dlq setup orders
    """


@dlq_app.callback()
def _dlq_group() -> None:
    """Dead-letter queues: a stage's rejected and expired messages, with their x-death headers.

    Examples:
      pipelinectl rabbitmq dlq setup orders --dry-run
    """


@dlq_app.command("setup")
def dlq_setup(
    queues: list[str] = typer.Argument(..., metavar="QUEUE...", help="Stages (queues) to give a dead-letter queue."),
    pipeline: str = typer.Option(None, "-p", "--pipeline", metavar="VHOST", help="Virtual host (default: the context's)."),
    exchange: str = typer.Option("pipelinectl.dlx", "--exchange", help="Dead-letter exchange to create or use (direct)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be created; change nothing."),
) -> None:
    """Create a dead-letter queue QUEUE.dlq for each stage, and the policy that routes to it.

    Per stage: the direct exchange pipelinectl.dlx, the queue QUEUE.dlq bound with routing key QUEUE,
    and the policy pipelinectl-dlq-QUEUE setting dead-letter-exchange and dead-letter-routing-key.

    A stage that already dead-letters is left alone. A stage with a policy of its own is refused.

    Safe to run again.

    Examples:
      pipelinectl rabbitmq dlq setup orders
      pipelinectl rabbitmq dlq setup orders payments -p /shop --dry-run -o json
    """
    from pipelinectl.plugin_api import mutate, plane_for

    from .driver import dlq_setup as setup

    session, plane = plane_for("rabbitmq")
    if dry_run:
        result = setup(plane, pipeline, queues, exchange=exchange, dry_run=True)
    else:
        result = mutate(session, verb="rabbitmq dlq setup", target=",".join(queues),
                        arguments={"pipeline": pipeline, "queues": queues, "exchange": exchange},
                        call=lambda: setup(plane, pipeline, queues, exchange=exchange),
                        summary=lambda r: ",".join(f"{q['queue']}={q['action']}" for q in r["queues"]))
    if session.options.output == "name":
        for entry in result["queues"]:
            typer.echo(entry["dlq"])
    elif session.options.output in ("table", "wide"):
        prefix = "dry run: would have " if dry_run else ""
        for entry in result["queues"]:
            if entry["action"] == "unchanged":
                typer.echo(f"{entry['queue']}: already dead-letters to {entry['exchange']!r} -> {entry['dlq'] or 'no queue'}")
            else:
                typer.echo(f"{entry['queue']}: {prefix}created {entry['dlq']} (exchange {entry['exchange']}, "
                           f"policy {entry['policy']})")
        if dry_run:
            typer.echo("nothing was changed")
    else:
        session.renderer.emit_mapping(result)
