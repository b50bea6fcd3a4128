"""The one target parser: bare, `-o name` (kind/ID) and runbook (kind=ID) forms, for every kind."""

from __future__ import annotations

import pytest

from pipelinectl.cli.targets import target
from pipelinectl.errors import UsageError
from pipelinectl.model import DLQItem, Pipeline, ReplayJob, Saga, Stage
from pipelinectl.output import name_of


@pytest.mark.parametrize("obj, kind", [
    (Stage(pipeline="o", name="ship"), "stage"),
    (Pipeline(name="orders"), "pipeline"),
    (Saga(id="saga-order-000042", pipeline="o", definition="order", status="stuck"), "saga"),
    (DLQItem(id="dlq-7", pipeline="o", stage="s", error_kind="fatal", message="m"), "dlqitem"),
    (ReplayJob(id="replay-3f2a", pipeline="o", stage="s", state="running"), "replayjob"),
])
def test_what_name_output_prints_parses_back(obj, kind):
    ident = getattr(obj, "id", None) or obj.name
    assert target(name_of(obj), kind) == ident
    assert target(ident, kind) == ident
    assert target(f"{kind}={ident}", kind) == ident


def test_aliases_and_ids_with_slashes():
    assert target("job/replay-1", "replayjob") == "replay-1"
    assert target("replay/replay-1", "replayjob") == "replay-1"
    assert target("dlq/dlq-1", "dlqitem") == "dlq-1"
    assert target("Saga/x", "saga") == "x"
    assert target("orders/42", "saga") == "orders/42", "an engine ID with a slash is not a prefix"


@pytest.mark.parametrize("text, kind, message", [
    ("saga/x", "stage", "'saga/x' is a saga, not a stage"),
    ("dlqitem/dlq-1", "saga", "'dlqitem/dlq-1' is a dlqitem, not a saga"),
    ("stage=ship", "replayjob", "is a stage, not a replayjob"),
    ("saga/", "saga", "'saga/' needs a value"),
    ("stag=parse", "stage", "unknown key 'stag'"),
    ("  ", "stage", "empty stage name"),
])
def test_refused(text, kind, message):
    with pytest.raises(UsageError, match=message):
        target(text, kind)
