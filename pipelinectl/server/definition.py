"""What a pipeline author writes: a `Pipeline` of stages (plain async functions), sagas, error kinds.

Nothing here runs anything or touches the store; the scheduler, the sagas and
the pipeline verbs all read these definitions.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# --- errors a stage handler raises to classify a failed item ---------------------------------------


class ItemError(Exception):
    """Raise from a handler to say how an item failed; `kind` decides retry vs DLQ."""

    kind = "persistent"


class ValidationError(ItemError):
    """The item itself is bad (schema, business rule). Never retried."""

    kind = "validation"


class TransientError(ItemError):
    """A dependency hiccup (timeout, 503). Retried with backoff under a budget."""

    kind = "transient"


class PersistentError(ItemError):
    """Retrying will not help (bad reference, rejected by a dependency)."""

    kind = "persistent"


class FatalError(ItemError):
    """The stage cannot go on safely: the item is dead-lettered and the stage pauses."""

    kind = "fatal"


def classify(exc: BaseException) -> str:
    """Map any exception to an error kind; unknown exceptions are persistent."""
    if isinstance(exc, ItemError):
        return exc.kind
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return "transient"
    if isinstance(exc, ValueError):
        return "validation"
    return "persistent"


# --- definitions -----------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    """Transient retries: exponential backoff with jitter, bounded by attempts and seconds."""

    max_attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 2.0
    budget: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


Handler = Callable[["Item"], Awaitable[Any]]
StatusReader = Callable[[], Any]  # returns a pipelinectl.model.Pipeline


@dataclass
class StageDef:
    name: str
    fn: Handler
    parallelism: int = 1
    min_parallelism: int = 1
    max_parallelism: int = 64
    capacity: int = 100
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class Step:
    """A saga step: `action(ctx)` forward, `compensate(ctx)` to undo it (optional)."""

    name: str
    action: Callable[[Any], Awaitable[Any]]
    compensate: Callable[[Any], Awaitable[Any]] | None = None
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=3, max_delay=1.0))


@dataclass
class SagaDef:
    name: str
    steps: list[Step]


class Pipeline:
    """A pipeline definition: ordered stages (plain async functions), an optional source and sagas."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stages: list[StageDef] = []
        self.source_fn: Callable[[int], AsyncIterator[tuple[str, Any]]] | None = None
        self.sagas: dict[str, SagaDef] = {}
        self.start_hooks: list[Callable[[StatusReader], None]] = []

    def stage(self, fn: Handler | None = None, /, **options: Any) -> Any:
        """Decorator: `@p.stage` or `@p.stage(parallelism=4, capacity=50, name="parse")`."""

        def register(f: Handler) -> Handler:
            name = options.pop("name", None) or f.__name__
            self.add_stage(StageDef(name=name, fn=f, **options))
            return f

        return register(fn) if fn is not None else register

    def add_stage(self, spec: StageDef) -> None:
        if any(s.name == spec.name for s in self.stages):
            raise ValueError(f"duplicate stage name {spec.name!r}")
        if not spec.min_parallelism <= spec.parallelism <= spec.max_parallelism:
            raise ValueError(f"stage {spec.name!r}: parallelism outside [min, max]")
        self.stages.append(spec)

    def source(self, fn: Callable[[int], AsyncIterator[tuple[str, Any]]]) -> Any:
        """Decorator for an async generator `fn(start)` yielding `(key, payload)`.

        `start` is how many items the input log already holds, so a restarted
        source continues where it stopped instead of feeding items twice.
        """
        self.source_fn = fn
        return fn

    def saga(self, name: str, steps: list[Step]) -> SagaDef:
        self.sagas[name] = SagaDef(name, steps)
        return self.sagas[name]

    def on_start(self, fn: Callable[[StatusReader], None]) -> Any:
        """Decorator for `fn(status)`, called when the runtime starts this pipeline.

        `status()` returns the pipeline's current status, the `Pipeline` model that
        `pipelinectl status` shows (stages, DLQ sizes, sagas by status), so code of
        the pipeline can adapt to it (the demo caps its fault injection this way).
        """
        self.start_hooks.append(fn)
        return fn


SagaStarter = Callable[[str, str, Any], str]


@dataclass
class Item:
    """What a stage handler receives. `key` is the idempotency key of the item."""

    key: str
    payload: Any
    offset: int | None
    stage: str
    attempt: int
    origin: str
    _start_saga: SagaStarter = field(repr=False)

    async def start_saga(self, definition: str, saga_id: str | None = None, data: Any = None) -> str:
        """Start a saga for this item; starting the same id twice is a no-op."""
        return self._start_saga(definition, saga_id or self.key, data)
