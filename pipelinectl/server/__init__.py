"""The reference control plane: a pipeline runtime behind the HTTP control-plane API.

Embedding (see docs/embedding.md): define a `Pipeline` whose stages are plain
async functions, then `serve([pipeline], ...)` or build the ASGI app with
`build_app`. Importing this package pulls in FastAPI: the CLI imports it only
for `pipelinectl server` and `pipelinectl demo`.

Where things live (each depends only on those above it; store.py on nothing):
  definition.py  what an author writes: Pipeline, StageDef, Step, RetryPolicy, Item, error kinds
  store.py       the SQLite state and every SQL statement
  rows.py        store rows as API models; ids, times and page tokens
  scheduler.py   stages as worker pools over bounded queues; the input log and the source
  sagas.py       the saga coordinator and its operator verbs
  verbs.py       one pipeline's API verbs: status, stage verbs, replay jobs, DLQ
  runtime.py     every pipeline of a server over one store, started and stopped together
  app.py, auth.py, serve.py   the HTTP API, tokens, running it; demo.py: the demo pipeline
"""

from .definition import (
    FatalError,
    Item,
    ItemError,
    PersistentError,
    Pipeline,
    RetryPolicy,
    SagaDef,
    StageDef,
    Step,
    TransientError,
    ValidationError,
)
from .runtime import Runtime
from .sagas import SagaContext
from .serve import build_app, serve

__all__ = [
    "FatalError", "Item", "ItemError", "PersistentError", "Pipeline", "RetryPolicy", "Runtime", "SagaContext",
    "SagaDef", "StageDef", "Step", "TransientError", "ValidationError", "build_app", "serve",
]
