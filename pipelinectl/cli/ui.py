"""`pipelinectl ui`: serve the web dashboard on 127.0.0.1 for one or more contexts.

The dashboard (pipelinectl.ui) and its server stack (Starlette, Jinja2, uvicorn,
the `ui` extra) are imported only when this command runs.
"""

from __future__ import annotations

import sys

import typer

from pipelinectl.cli.session import current
from pipelinectl.errors import UsageError


def ui(
    all_contexts: bool = typer.Option(False, "--all-contexts", help="Every context of the config."),
    port: int = typer.Option(0, "--port", min=0, max=65535, metavar="N",
                             help="Port on 127.0.0.1 (default: a free one)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the dashboard in the default web browser."),
    allow_writes: bool = typer.Option(
        False, "--allow-writes",
        help="Offer pause/resume/drain, scale, DLQ redrive and saga retry/force-fail; each asks in the page."),
) -> None:
    """Serve the web dashboard on 127.0.0.1: overview, pipeline graph, live metrics, DLQ, sagas.

    Shows the current context, every --context NAME given (repeat it), or --all-contexts,
    through the same drivers as the CLI. It prints the URL to open; the URL carries a random
    access token, so no other local user can use the dashboard. Read-only unless
    --allow-writes; then every action asks in the page and runs the CLI verb's own code.
    Ctrl-C stops it.

    Examples:

      pipelinectl ui --open

      pipelinectl ui --all-contexts --allow-writes --port 8790
    """
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"the dashboard needs the ui extra ({exc.name} is missing)",
                         hint="pip install 'pipelinectl[ui]'") from None
    from pipelinectl.ui.serve import serve

    session = current()
    config = session.config
    if all_contexts:
        if session.options.contexts:
            raise UsageError("--all-contexts and --context exclude each other")
        names = sorted(config.contexts)
        if not names:
            raise UsageError("no contexts configured",
                             hint="create one with 'pipelinectl config set-context NAME --url URL'")
    else:
        names = list(dict.fromkeys(session.options.contexts)) or [session.context_name]
    for name in names:
        config.get(name)  # an unknown context is refused before anything is served
    serve(names, session.options, port=port, allow_writes=allow_writes, open_browser=open_browser,
          current_context=config.current_context, say=lambda line: sys.stderr.write(line + "\n"))
