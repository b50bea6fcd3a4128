"""`pipelinectl server`: run the reference control plane in the foreground.

The server stack (FastAPI, uvicorn) is imported only when this command runs.
"""

from __future__ import annotations

import typer

from pipelinectl.errors import UsageError

app = typer.Typer(add_completion=False, help="Run the reference control plane in the foreground.")

SERVER_EXTRA = ("fastapi", "uvicorn")  # what `pip install 'pipelinectl[server]'` adds


def require_server_extra() -> None:
    """Refuse with the install hint when the server extra is missing, before anything starts.

    Looked up, not imported (find_spec), so the check costs nothing when the extra is there;
    `demo` checks in the parent, before it spawns the server.
    """
    from importlib.util import find_spec

    for name in SERVER_EXTRA:
        try:
            found = find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise UsageError(f"the control plane needs the server extra ({name} is missing)",
                             hint="pip install 'pipelinectl[server]'")


@app.command()
def server(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Auth may be off only on loopback."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
    db: str = typer.Option(None, "--db", help="SQLite state file (default: <state dir>/server.db)."),
    token_file: str = typer.Option(None, "--token-file",
                                   help="YAML/JSON {tokens: [{token, role, name}]}; roles viewer|operator|admin."),
    demo: bool = typer.Option(False, "--demo/--no-demo", help="Run the demo pipeline 'orders' with fault injection."),
    pipeline: list[str] = typer.Option([], "--pipeline", help="module:attr of a Pipeline to run (repeatable)."),
    stop_timeout: float = typer.Option(10.0, "--stop-timeout", min=0.5,
                                       help="Seconds SIGTERM waits for in-flight items before stopping."),
) -> None:
    """Serve the control-plane API v1 until Ctrl-C or SIGTERM.

    Without --token-file, auth is off, which is allowed only on a loopback
    address; the startup banner says so.

    Examples:
      pipelinectl server --demo
      pipelinectl server --host 0.0.0.0 --port 8080 --token-file tokens.yaml --pipeline myapp.pipelines:orders
    """
    require_server_extra()
    try:
        from pipelinectl.server.__main__ import load_pipelines
        from pipelinectl.server.demo import build
        from pipelinectl.server.serve import ServeError, serve
    except ImportError as exc:  # the server extra is missing
        raise UsageError(f"the control plane needs the server extra ({exc.name} is missing)",
                         hint="pip install 'pipelinectl[server]'") from None
    if db is None:
        from pipelinectl.config import state_dir

        db = str(state_dir() / "server.db")
    pipelines = [build()] if demo else []
    for spec in pipeline:
        try:
            pipelines += load_pipelines(spec)
        except (ImportError, AttributeError) as exc:
            raise UsageError(f"cannot load pipeline {spec!r}: {exc}") from None
    if not pipelines:
        raise UsageError("no pipeline to run", hint="pass --demo or --pipeline module:attr")
    try:
        serve(pipelines, host=host, port=port, db=db, token_file=token_file, stop_timeout=stop_timeout)
    except ServeError as exc:
        raise UsageError(str(exc)) from None
