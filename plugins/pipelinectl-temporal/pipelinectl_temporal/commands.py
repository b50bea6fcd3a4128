"""`pipelinectl temporal ...`: Temporal-only views that have no place in the common verbs."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def _group() -> None:
    """Temporal specifics: server info and batch jobs (sagas use the common `saga` verbs)."""


def _plane():  # type: ignore[no-untyped-def]
    from pipelinectl.cli.session import current
    from pipelinectl.errors import UsageError

    session = current()
    plane = session.plane
    if getattr(plane, "driver", None) != "temporal":
        raise UsageError(f"context '{session.context_name}' uses driver '{plane.driver}', not temporal",
                         hint="pass --context NAME of a temporal context")
    return session, plane


@app.command("info")
def info() -> None:
    """Show the Temporal server's version and capabilities, and which API this driver uses for it.

    Examples:
      pipelinectl temporal info
      pipelinectl temporal info -o json
    """
    from .driver import WORKFLOW_SCOPED_ACTIVITY_API

    session, plane = _plane()
    system = plane.http.system_info()
    version = plane.http.server_version()
    data = {
        "kind": "TemporalInfo",
        "context": session.context_name,
        "url": plane.connection.url,
        "namespace": plane.connection.namespace or plane.connection.pipeline,
        "server_version": system.get("serverVersion"),
        "capabilities": sorted(k for k, v in (system.get("capabilities") or {}).items() if v),
        "activity_api": ("workflow-scoped" if version >= WORKFLOW_SCOPED_ACTIVITY_API
                         else "namespace-scoped" if version >= (1, 27) else "none"),
    }
    _print(session, data)


@app.command("batches")
def batches(limit: int = typer.Option(20, "--limit", help="At most this many, newest first.")) -> None:
    """List the namespace's batch jobs (those `saga ... --query` started, and others').

    Examples:
      pipelinectl temporal batches
    """
    session, plane = _plane()
    ns = plane._ns(None)
    from .client import seg

    page = plane.http.request("GET", f"/api/v1/namespaces/{seg(ns)}/batch-operations",
                              params={"pageSize": limit})
    jobs = [plane.saga_batch_show(ns, op.get("jobId")) for op in page.get("operationInfo") or []]
    session.renderer.emit(jobs, kind="BatchJob")


def _print(session, data: dict) -> None:  # type: ignore[no-untyped-def]
    if session.options.output in ("json", "yaml", "jsonl"):
        from pipelinectl.output import Renderer

        renderer = Renderer(session.options.output)
        if session.options.output == "jsonl":
            renderer._line(data)
        else:
            renderer._document(data)
        return
    for key, value in data.items():
        if key != "kind":
            typer.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
