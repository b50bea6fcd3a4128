"""docs/schema/output.schema.json: the machine output contract, kept in step with model.py.

The per-kind definitions of domain resources are generated from the dataclasses
in pipelinectl/model.py; this test regenerates them and fails when the checked-
in schema differs, so a field cannot be added, renamed or retyped without the
documented schema (and docs/output.md) changing with it. Regenerate with:

    PIPELINECTL_REGEN_SCHEMA=1 .venv/bin/python -m pytest tests/unit/test_output_schema.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pipelinectl import model
from pipelinectl.model import (
    ERROR_KINDS,
    REPLAY_STATES,
    SAGA_STATUSES,
    STAGE_STATES,
    DLQItem,
    Pipeline,
    Resource,
    Saga,
    SagaEvent,
    SagaStep,
    Stage,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "docs" / "schema" / "output.schema.json"

# Resources that commands print (request/filter dataclasses are inputs, not output).
OUTPUT_MODELS = ["Pipeline", "Stage", "RateLimit", "ReplayJob", "DLQItem", "BulkResult", "Saga", "SagaStep", "SagaEvent",
                 "BatchJob", "AuditEntry"]
LISTED = ["Pipeline", "Stage", "ReplayJob", "DLQItem", "Saga", "BatchJob", "AuditEntry"]
ENUMS = {
    ("Stage", "state"): list(STAGE_STATES),
    ("ReplayJob", "state"): list(REPLAY_STATES),
    ("Saga", "status"): list(SAGA_STATUSES),
    ("DLQItem", "error_kind"): list(ERROR_KINDS),
}

NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _type(tp: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _type(args[0])
        if "$ref" in inner:
            return {"anyOf": [inner, {"type": "null"}]}
        if "type" in inner:
            inner = {**inner, "type": [inner["type"], "null"]}
        return inner
    if origin is list:
        (item,) = typing.get_args(tp)
        return {"type": "array", "items": _type(item)}
    if origin is dict:
        _, value = typing.get_args(tp)
        return {"type": "object", "additionalProperties": _type(value)}
    if tp is Any:
        return {}
    if tp is datetime:
        return {"type": "string", "format": "date-time"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if isinstance(tp, type) and issubclass(tp, Resource):
        return {"$ref": f"#/$defs/{tp.__name__}"}
    raise TypeError(f"no schema type for {tp!r}")


def model_defs() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    for name in OUTPUT_MODELS:
        cls = getattr(model, name)
        hints = typing.get_type_hints(cls)
        props: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "kind":
                props["kind"] = {"const": name}
                continue
            prop = _type(hints[f.name])
            if (name, f.name) in ENUMS:
                prop = {**prop, "enum": ENUMS[(name, f.name)]}
            props[f.name] = prop
        defs[name] = {
            "type": "object",
            "properties": props,
            "required": [f.name for f in dataclasses.fields(cls)],
            "additionalProperties": False,
        }
    for name in LISTED:
        defs[f"{name}List"] = {
            "type": "object",
            "properties": {
                "kind": {"const": f"{name}List"},
                "items": {"type": "array", "items": {"$ref": f"#/$defs/{name}"}},
                "next_page_token": {"type": ["string", "null"]},
                "total": {"type": ["integer", "null"]},
            },
            "required": ["kind", "items"],
            "additionalProperties": False,
        }
    return defs


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def test_schema_is_valid_json_schema():
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)


def test_model_definitions_match_model_py():
    schema = load_schema()
    generated = model_defs()
    if os.environ.get("PIPELINECTL_REGEN_SCHEMA"):
        schema["$defs"].update(generated)
        SCHEMA_PATH.write_text(json.dumps(schema, indent=2) + "\n")
    for name, definition in generated.items():
        assert schema["$defs"].get(name) == definition, (
            f"docs/schema/output.schema.json: '{name}' differs from pipelinectl/model.py; "
            "regenerate (see this module's docstring) and update docs/output.md"
        )


def test_every_kind_is_documented_in_output_md():
    text = (ROOT / "docs" / "output.md").read_text()
    for name in load_schema()["$defs"]:
        assert f"`{name}`" in text, f"docs/output.md does not describe kind {name}"


def _now() -> datetime:
    return datetime(2026, 5, 1, 12, 0, tzinfo=datetime.now().astimezone().tzinfo).astimezone()


@pytest.mark.parametrize(
    "obj",
    [
        Pipeline(name="orders", stages=[Stage(pipeline="orders", name="parse", paused_until=_now())]),
        DLQItem(id="d1", pipeline="orders", stage="parse", error_kind="validation", message="bad", first_seen=_now()),
        Saga(id="s1", pipeline="orders", definition="order", status="stuck",
             steps=[SagaStep(name="charge", status="failed", started_at=_now())],
             events=[SagaEvent(seq=1, time=_now(), type="step_failed", step="charge")]),
    ],
)
def test_model_output_validates(obj):
    validator = jsonschema.Draft202012Validator(load_schema(), format_checker=jsonschema.FormatChecker())
    validator.validate(json.loads(json.dumps(obj.to_dict())))


def test_schema_rejects_drift():
    validator = jsonschema.Draft202012Validator(load_schema())
    good = Stage(pipeline="o", name="s").to_dict()
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "state": "sleeping"})
    assert not validator.is_valid({**good, "surprise": 1})
    assert not validator.is_valid({k: v for k, v in good.items() if k != "queue_depth"})
    assert not validator.is_valid({"kind": "NoSuchKind"})


def test_drill_and_wait_shapes_validate():
    """The shapes other modules build as dicts: a drill step, a validation summary, a wait result, a removal."""
    import subprocess
    import sys

    from pipelinectl.drill.runner import StepResult

    validator = jsonschema.Draft202012Validator(load_schema(), format_checker=jsonschema.FormatChecker())
    step = StepResult(phase="method", index=0, name="pause", type="run", line=12, outcome="passed",
                      command=["pipelinectl", "pause", "charge"], exit_code=0, started_at="2026-05-01T12:00:00Z")
    validator.validate(step.to_dict())
    validator.validate({"kind": "WaitResult", "condition": "state=paused", "target": "stage orders/charge",
                        "met": True, "observed": "paused", "elapsed_seconds": 1.5, "polls": 3})
    validator.validate({"kind": "Saga", "removed": True, "pipeline": "orders", "id": "s-1"})
    drill = ROOT / "docs" / "drills" / "poison-redrive.yaml"
    if drill.exists():
        done = subprocess.run([sys.executable, "-m", "pipelinectl", "drill", "validate", str(drill), "-o", "json"],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        validator.validate(json.loads(done.stdout))
