"""Run the dashboard: bind 127.0.0.1, print the URL with its access token, serve until Ctrl-C or SIGTERM."""

from __future__ import annotations

import secrets
import signal
import socket
import sys
import threading
from collections.abc import Callable

from pipelinectl.cli.options import GlobalOptions
from pipelinectl.errors import UsageError

from .app import Settings, create_app
from .planes import Planes

HOST = "127.0.0.1"


def bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}",
                         hint="choose another --port, or leave it out for a free one") from None
    sock.listen(128)
    return sock


def serve(contexts: list[str], options: GlobalOptions, *, port: int = 0, allow_writes: bool = False,
          open_browser: bool = False, current_context: str | None = None,
          say: Callable[[str], None] = lambda line: None) -> None:
    """Serve until interrupted. The URL (with the access token) is the one line on stdout."""
    import uvicorn

    sock = bind(port)
    port = sock.getsockname()[1]
    settings = Settings(token=secrets.token_urlsafe(24), csrf=secrets.token_urlsafe(24), port=port,
                        allow_writes=allow_writes, current_context=current_context)
    app = create_app(Planes(contexts, options), settings)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", proxy_headers=False,
                            server_header=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    url = f"http://{HOST}:{port}/?token={settings.token}"
    sys.stdout.write(url + "\n")
    sys.stdout.flush()
    say(f"pipelinectl ui: {len(contexts)} context{'' if len(contexts) == 1 else 's'} "
        f"({', '.join(contexts)}), {'writes ON (each action asks in the page)' if allow_writes else 'read-only'}; "
        "open the URL above (it carries the access token); Ctrl-C stops")
    if open_browser:
        import webbrowser

        threading.Timer(0.3, webbrowser.open, args=(url,)).start()
    # uvicorn re-raises the signal that stopped it once it has shut down; a no-op handler turns that
    # into a normal return (as `pipelinectl server` does): Ctrl-C or SIGTERM is how the dashboard ends, exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run(sockets=[sock])
