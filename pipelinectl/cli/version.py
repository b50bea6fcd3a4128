"""`pipelinectl version`: the client's version, and the control plane's when one is reachable."""

from __future__ import annotations

import typer

from pipelinectl import __version__
from pipelinectl.cli.session import current


def version(
    client: bool = typer.Option(False, "--client", help="Only the client version; do not contact the plane."),
) -> None:
    """Show the client version and, unless --client, the current context's control plane.

    Examples:
      pipelinectl version
      pipelinectl version --client -o json
    """
    session = current()
    info: dict[str, object] = {"kind": "Version", "client": __version__}
    if not client:
        try:
            info["context"] = session.context_name
            info["driver"] = session.context.driver
            server = getattr(session.plane, "server_version", None)
            info["server"] = server() if callable(server) else None
        except Exception as exc:  # version must answer even when the plane does not
            info["server_error"] = session.redact(getattr(exc, "message", str(exc)))
    session.emit({key: value for key, value in info.items() if value is not None or session.options.machine})
