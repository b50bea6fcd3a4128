"""The reference control plane: a pipeline runtime behind the HTTP control-plane API.

Embedding (see docs/embedding.md): define a `Pipeline` whose stages are plain
async functions, then `serve([pipeline], ...)` or build the ASGI app with
`build_app`. Importing this package pulls in FastAPI: the CLI imports it only
for `pipelinectl server` and `pipelinectl demo`.
"""

from .runtime import (
    FatalError,
    Item,
    ItemError,
    PersistentError,
    Pipeline,
    RetryPolicy,
    Runtime,
    SagaDef,
    StageDef,
    Step,
    TransientError,
    ValidationError,
)
from .sagas import SagaContext
from .serve import build_app, serve

__all__ = [
    "FatalError", "Item", "ItemError", "PersistentError", "Pipeline", "RetryPolicy", "Runtime", "SagaContext",
    "SagaDef", "StageDef", "Step", "TransientError", "ValidationError", "build_app", "serve",
]
