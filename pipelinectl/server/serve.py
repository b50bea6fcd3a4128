"""Run the control plane: auth policy, banner, uvicorn with a bounded graceful shutdown."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from .auth import Authenticator, is_loopback, load_tokens
from .definition import Pipeline
from .runtime import Runtime


class ServeError(Exception):
    """A start-up refusal the command line shows as one line (bad token file, auth off on a public address)."""


def resolve_auth(host: str, token_file: str | Path | None) -> Authenticator:
    """Tokens when a token file is given; auth off only on a loopback address."""
    if token_file:
        try:
            return Authenticator(load_tokens(token_file))
        except OSError as exc:
            raise ServeError(f"cannot read token file {token_file}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ServeError(f"invalid token file {token_file}: {exc}") from None
    if not is_loopback(host):
        raise ServeError(f"refusing to listen on {host} without auth: pass --token-file (auth may be off only on loopback)")
    return Authenticator(None)


def build_app(pipelines: list[Pipeline], db: str | Path, auth: Authenticator | None = None,
              stop_timeout: float = 10.0):  # noqa: ANN201 - a FastAPI app
    """The ASGI app for `pipelines` over the SQLite file `db` (auth off if `auth` is None)."""
    from .app import create_app

    return create_app(Runtime(pipelines, db), auth or Authenticator(None), stop_timeout=stop_timeout)


def banner(host: str, port: int, db: str | Path, auth: Authenticator, pipelines: list[Pipeline]) -> str:
    names = ", ".join(p.name for p in pipelines) or "(none)"
    if auth.enabled:
        mode = f"auth on ({len(auth.tokens or {})} token(s))"
    else:
        mode = "AUTH OFF: anyone who can reach this loopback address is admin (demo only)"
    return (f"pipelinectl control plane listening on http://{host}:{port}\n"
            f"  pipelines: {names}\n  database:  {db}\n  {mode}\n")


def serve(pipelines: list[Pipeline], *, host: str = "127.0.0.1", port: int = 8080,
          db: str | Path = "pipelinectl.db", token_file: str | Path | None = None,
          stop_timeout: float = 10.0, log_level: str = "warning",
          echo: Callable[[str], None] = lambda s: (sys.stderr.write(s), sys.stderr.flush())) -> None:
    """Serve `pipelines` until SIGINT/SIGTERM; shutdown finishes in-flight work within `stop_timeout` s."""
    import uvicorn

    auth = resolve_auth(host, token_file)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    app = build_app(pipelines, db, auth, stop_timeout=stop_timeout)
    echo(banner(host, port, db, auth, pipelines))
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            timeout_graceful_shutdown=max(1, int(stop_timeout / 2)), access_log=False)
    # uvicorn re-raises the signal that stopped it once it has shut down; a no-op handler
    # turns that into a normal return, so a graceful stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.Server(config).run()
    echo("pipelinectl control plane stopped\n")
