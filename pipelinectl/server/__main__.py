"""`python -m pipelinectl.server`: run the control plane without the CLI (same options as `pipelinectl server`)."""

from __future__ import annotations

import argparse
import importlib
import sys

from .definition import Pipeline


def load_pipelines(spec: str) -> list[Pipeline]:
    """`module:attr`, where attr is a Pipeline, a list of them, or a callable returning either."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise SystemExit(f"error: --pipeline must look like module:attribute, got {spec!r}")
    obj = getattr(importlib.import_module(module), attr)
    if callable(obj) and not isinstance(obj, Pipeline):
        obj = obj()
    return list(obj) if isinstance(obj, (list, tuple)) else [obj]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelinectl.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--db", default="pipelinectl.db", help="SQLite database file")
    parser.add_argument("--token-file", default=None, help="YAML/JSON {tokens: [{token, role, name}]}")
    parser.add_argument("--demo", action=argparse.BooleanOptionalAction, default=False,
                        help="run the demo pipeline 'orders'")
    parser.add_argument("--pipeline", action="append", default=[], help="module:attr of a Pipeline to run")
    parser.add_argument("--stop-timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    from .serve import ServeError, serve

    pipelines: list[Pipeline] = []
    if args.demo:
        from .demo import build

        pipelines.append(build())
    for spec in args.pipeline:
        pipelines += load_pipelines(spec)
    try:
        serve(pipelines, host=args.host, port=args.port, db=args.db, token_file=args.token_file,
              stop_timeout=args.stop_timeout)
    except ServeError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
