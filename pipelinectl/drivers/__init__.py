"""Built-in drivers. `http` speaks the project's own control-plane API (docs/api.md).

Engine drivers (Temporal, NATS, ...) live in their own plugin packages and are
found through the `pipelinectl.drivers` entry-point group (see plugins.py).
"""
