"""Targets as operators paste them, parsed in one place for every verb.

A verb's target may be given bare (`ship`, `saga-order-000042`), as `-o name`
prints it (`stage/ship`, `saga/saga-order-000042`, `dlqitem/dlq-7`,
`replayjob/replay-3f2a`, `pipeline/orders`), or runbook style (`stage=ship`).
A prefix is stripped only when it is a kind pipelinectl prints, so an engine ID
that itself holds a slash (`orders/42`) passes through untouched; the prefix of
another kind, or an unknown `key=`, is a usage error before anything is sent.
"""

from __future__ import annotations

from pipelinectl.errors import UsageError

# kind (as `-o name` prints it) -> other spellings operators use for it
KINDS: dict[str, tuple[str, ...]] = {
    "pipeline": (),
    "stage": (),
    "saga": (),
    "dlqitem": ("dlq",),
    "replayjob": ("replay", "job"),
    "batchjob": ("batch",),
}
_SPELLINGS = {alias: kind for kind, aliases in KINDS.items() for alias in (kind, *aliases)}


def target(text: str, kind: str) -> str:
    """The bare name or ID in `text`, for a target of `kind` (a key of KINDS)."""
    raw = (text or "").strip()
    forms = f"{kind}/NAME, {kind}=NAME or NAME"
    for sep in ("/", "="):
        prefix, found, rest = raw.partition(sep)
        if not found:
            continue
        given = _SPELLINGS.get(prefix.strip().lower())
        if given is None:
            if sep == "=":  # `stag=parse`: a typo of the runbook form, not a name
                raise UsageError(f"'{raw}': unknown key '{prefix.strip()}'", hint=f"give {forms}")
            continue
        if given != kind:
            raise UsageError(f"'{raw}' is a {given}, not a {kind}", hint=f"give {forms}")
        if not rest.strip():
            raise UsageError(f"'{raw}' needs a value", hint=f"give {forms}")
        return rest.strip()
    if not raw:
        raise UsageError(f"empty {kind} name" if kind in ("stage", "pipeline") else f"empty {kind} ID")
    return raw


def targets(texts: list[str], kind: str) -> list[str]:
    return [target(text, kind) for text in texts]
