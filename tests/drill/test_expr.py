"""Assertions on JSON output: paths, operators, and what a malformed expression says."""

from __future__ import annotations

import pytest

from pipelinectl.drill.expr import ExprError, parse

DOC = {
    "kind": "Pipeline",
    "stages": [
        {"name": "ingest", "state": "running", "queue_depth": 0},
        {"name": "charge", "state": "paused", "queue_depth": 12},
    ],
    "items": [{"id": "dlq-1", "key": "order-1"}, {"id": "dlq-2", "key": "order-2"}],
    "failed": {},
    "total": 3,
    "note": None,
}


@pytest.mark.parametrize("text, holds, actual", [
    ("stages[name=charge].state == paused", True, "paused"),
    ("stages[name=charge].queue_depth >= 10", True, 12),
    ("stages[name=charge].queue_depth < 10", False, 12),
    ("stages[0].name == ingest", True, "ingest"),
    ("stages[-1].name == charge", True, "charge"),
    ("stages[*].state contains paused", True, ["running", "paused"]),
    ("stages[*].state !contains draining", True, ["running", "paused"]),
    ("items.length == 2", True, 2),
    ("failed.length == 0", True, 0),
    ("items[*].key contains order-2", True, ["order-1", "order-2"]),
    ("total in [1, 2, 3]", True, 3),
    ("total != 3", False, 3),
    ("total", True, 3),
    ("note", False, None),
    ("stages[name=ship].state == running", False, "missing"),
    ("nothing.here == 1", False, "missing"),
    ("stages[name=charge].state >= 1", False, "paused"),  # a string is not ordered against a number
    ('kind == "Pipeline"', True, "Pipeline"),
])
def test_expressions(text, holds, actual):
    ok, value = parse(text).evaluate(DOC)
    assert ok is holds
    assert (repr(value) if value.__class__.__name__ == "_Missing" else value) == actual


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("total ~ 3", "not an operator"),
    ("total >=", "needs a value"),
    ("total > many", "not a number"),
    ("total in 3", "needs a list"),
    ("stages[name].state == x", "[N], [*] or [field=value]"),
    ("stages[0.state == x", "unclosed"),
    ("stages..state == x", "unexpected"),
])
def test_malformed(text, message):
    with pytest.raises(ExprError, match=message.replace("[", r"\[").replace("]", r"\]").replace("*", r"\*")):
        parse(text)
