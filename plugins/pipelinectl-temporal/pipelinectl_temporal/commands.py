"""`pipelinectl temporal ...`: Temporal-only views that have no place in the common verbs."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def _group() -> None:
    """Temporal specifics: server info, counts and batch jobs (sagas use the common `saga` verbs)."""


def _plane():  # type: ignore[no-untyped-def]
    from pipelinectl.plugin_api import plane_for

    return plane_for("temporal")


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
    session.emit(data)


@app.command("batches")
def batches(limit: int = typer.Option(20, "--limit", help="At most this many, newest first.")) -> None:
    """List the namespace's batch jobs (those `saga ... --query` started, and others').

    Examples:
      pipelinectl temporal batches
    """
    session, plane = _plane()
    ns = plane.namespace_of(None)
    from .client import seg

    page = plane.http.request("GET", f"/api/v1/namespaces/{seg(ns)}/batch-operations",
                              params={"pageSize": limit})
    jobs = [plane.saga_batch_show(ns, op.get("jobId")) for op in page.get("operationInfo") or []]
    session.renderer.emit(jobs, kind="BatchJob")


@app.command("count")
def count(
    query: str | None = typer.Option(None, "--query", "-q", metavar="QUERY", help="A visibility query."),
    status: str | None = typer.Option(None, "--status", metavar="STATUS", help="A saga status (as in saga list)."),
    definition: str | None = typer.Option(None, "--definition", "-d", metavar="NAME", help="A workflow type."),
) -> None:
    """Count sagas (CountWorkflowExecutions), in total and by Temporal status.

    Examples:
      pipelinectl temporal count --status failed
      pipelinectl temporal count --query "StartTime > '2026-01-01T00:00:00Z'" -o json
    """
    from pipelinectl.plugin_api import SagaFilter

    session, plane = _plane()
    selection = SagaFilter(pipeline=plane.namespace_of(None), status=status, definition=definition, query=query)
    data = {"kind": "SagaCount", "namespace": selection.pipeline, "total": plane.saga_count(selection),
            "by_temporal_status": plane.count_by_status(selection)}
    session.emit(data)
