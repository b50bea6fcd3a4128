"""Drill files are checked completely before anything runs: every error names its line and field.

The published JSON Schema (docs/schema/drill.schema.json) must agree with the loader:
it accepts every example drill and rejects the structural mistakes the loader rejects.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from pipelinectl.drill.loader import DrillFileError, _loader, load
from pipelinectl.errors import UsageError
from tests.support.cli import CliEnv, validate_output

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "docs" / "drills").glob("*.yaml"))
SCHEMA = json.loads((ROOT / "docs" / "schema" / "drill.schema.json").read_text())

GOOD = """\
title: ok
variables:
  stage: charge
method:
  - run: pause ${stage}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drill.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(DrillFileError) as caught:
        load(path)
    return [e.removeprefix(f"{path}:") for e in caught.value.errors]


def test_examples_exist_and_are_valid():
    assert len(EXAMPLES) >= 4
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    for path in EXAMPLES:
        drill = load(path)
        assert drill.title and drill.method and drill.probes, path
        jsonschema.validate(yaml.load(path.read_text(), Loader=_loader()), SCHEMA)


# (file text, expected "LINE: field: message fragment", rejected by the schema too?)
BAD = [
    ("method:\n  - run: status\n", "1: (file): missing required field 'title'", True),
    ("title: t\nmethod:\n  - run: status\nrollback:\n  - run: status\n", "4: rollback: unknown field", True),
    ("title: t\nmethod: []\n", "2: method: needs at least one step", True),
    ("title: t\nmethod:\n  - run: status\n    sleep: 2\n", "3: method[0]: a step has exactly one of", True),
    ("title: t\nmethod:\n  - run: status\n  - naem: x\n    sleep: 1\n", "4: method[1].naem: unknown field", True),
    ("title: t\nmethod:\n  - sleep: soon\n", "3: method[0].sleep: 'soon' is not a duration", True),
    ("title: t\nmethod:\n  - sleep: -1\n", "3: method[0].sleep: must be more than 0", True),
    ("title: t\nmethod:\n  - run: status\n    continue_on_failure: yes\n",
     "4: method[0].continue_on_failure: must be true or false", True),
    ("title: t\nmethod:\n  - wait:\n      for: state~paused\n      target: charge\n",
     "4: method[0].wait.for: 'state~paused' is not a condition", False),
    ("title: t\nmethod:\n  - wait: {target: charge}\n", "3: method[0].wait: missing required field 'for'", True),
    ("title: t\nmethod:\n  - assert:\n      run: status\n      that: 'stages[0].state ~ x'\n",
     "5: method[0].assert.that: '~' is not an operator", False),
    ("title: t\nmethod:\n  - run: dlq purge --all\n", "3: method[0].run: 'dlq purge' asks for confirmation: add 'yes: true'",
     False),
    ("title: t\nmethod:\n  - run: dlq redrive --all --yes\n    yes: true\n",
     "3: method[0].run: '--yes' is not allowed in a drill step", False),
    ("title: t\nmethod:\n  - run: status --context prod\n", "3: method[0].run: '--context' is not allowed", False),
    ("title: t\nmethod:\n  - run: config use-context prod\n", "3: method[0].run: 'config' is not a verb a drill may run",
     False),
    ("title: t\nhypothesis:\n  probes:\n    - run: pause charge\nmethod:\n  - run: status\n",
     "4: hypothesis.probes[0].run: a probe only reads", False),
    ("title: t\nmethod:\n  - run: pause ${stage}\n", "3: method[0].run: unknown variable '${stage}'", False),
    ("title: t\nmethod:\n  - run: replay show ${job}\n  - run: replay --from-offset 0 --to-offset 5\n    yes: true\n"
     "    capture: {job: id}\n", "3: method[0].run: unknown variable '${job}'", False),
    ("title: t\nmethod:\n  - run: status\nrollbacks:\n  - run: resume charge\n    continue_on_failure: true\n",
     "6: rollbacks[0].continue_on_failure: every rollback always runs", False),
    ("title: t\nmethod:\n  - sleep: 1\n    yes: true\n", "4: method[0].yes: only run and assert steps take yes", False),
    ("title: t\nmethod:\n  - shell: 'true'\n    expect_exit: 300\n", "4: method[0].expect_exit: must be an exit code", True),
    ("title: t\nvariables:\n  9lives: x\nmethod:\n  - run: status\n", "3: variables.9lives: a variable name", True),
]


@pytest.mark.parametrize("text, expected, schema_too", BAD, ids=[b[1].split(":")[1].strip() + "-" + str(i)
                                                                 for i, b in enumerate(BAD)])
def test_bad_files_name_the_line_and_field(tmp_path, text, expected, schema_too):
    errors = errors_of(tmp_path, text)
    assert any(e.startswith(expected) for e in errors), errors
    if schema_too:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(yaml.load(text, Loader=_loader()), SCHEMA)


def test_every_error_is_reported_in_line_order(tmp_path):
    errors = errors_of(tmp_path, """\
        title: t
        method:
          - sleep: never
          - run: pause ${nope}
          - wait: {for: "dlq>=x"}
        """)
    assert [e.split(":")[0] for e in errors] == ["3", "4", "5"]


def test_yaml_syntax_error_names_the_line(tmp_path):
    errors = errors_of(tmp_path, "title: t\nmethod:\n  - run: [status\n  - sleep: 1\n")
    assert errors[0].startswith("4: not valid YAML") or errors[0].startswith("3: not valid YAML"), errors


def test_variables_and_overrides(tmp_path):
    path = write(tmp_path, GOOD)
    assert load(path, {"stage": "ship"}).variables == {"stage": "ship"}
    with pytest.raises(UsageError, match="declares no variable 'stag'"):
        load(path, {"stag": "ship"})


def test_a_stage_condition_may_name_its_stage_with_stage(tmp_path):
    drill = load(write(tmp_path, "title: t\nmethod:\n  - wait: {for: state=paused, stage: charge}\n"))
    assert drill.method[0].spec == {"for": "state=paused", "stage": "charge"}


def test_yes_is_a_key_not_a_boolean(tmp_path):
    drill = load(write(tmp_path, "title: t\nmethod:\n  - run: dlq purge --all\n    yes: true\n"))
    assert drill.method[0].yes is True


def test_validate_command_prints_every_error_and_exits_2(tmp_path):
    cli = CliEnv(tmp_path / "user")
    path = write(tmp_path, "title: t\nmethod:\n  - sleep: never\n  - run: dlq purge --all\n")
    result = cli.run("drill", "validate", str(path))
    assert result.rc == 2, result
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: {path}:3: method[0].sleep: 'never' is not a duration (30s, 5m, 1h)",
        f"error: {path}:4: method[1].run: 'dlq purge' asks for confirmation: add 'yes: true' to this step "
        "(a drill never waits on a prompt)",
    ]
    assert result.stdout == ""
    ok = cli.run("drill", "validate", str(EXAMPLES[0]), "-o", "json")
    assert ok.rc == 0, ok
    validate_output(ok.json())
    assert ok.json()["valid"] is True and ok.json()["method"] >= 1


def test_run_refuses_an_invalid_file_before_anything_runs(tmp_path):
    cli = CliEnv(tmp_path / "user")
    marker = tmp_path / "ran"
    path = write(tmp_path, f"title: t\nmethod:\n  - shell: touch {marker}\n  - sleep: never\n")
    result = cli.run("drill", "run", str(path))
    assert result.rc == 2, result
    assert "method[1].sleep" in result.stderr
    assert not marker.exists()
    missing = cli.run("drill", "run", str(tmp_path / "nope.yaml"))
    assert missing.rc == 2 and "drill file not found" in missing.stderr


@pytest.mark.parametrize("wait, expected", [
    ("{for: state=paused}", "3: method[0].wait: missing required field 'target'"),
    ("{for: 'dlq>=1', target: charge}", "3: method[0].wait.target: a dlq condition takes no target"),
    ("{for: state=paused, target: saga/x}", "3: method[0].wait.target: 'saga/x' is a saga, not a stage"),
    ("{for: saga=stuck, target: s1, stage: charge}", "3: method[0].wait.stage: stage goes with dlq conditions only"),
    ("{for: state=paused, target: ship, stage: charge}", "3: method[0].wait.stage: stage given twice"),
    ("{for: state=paused, stage: charge, error_kind: fatal}", "3: method[0].wait.error_kind: error_kind goes with dlq"),
])
def test_wait_targets_are_checked_like_the_wait_command_would(tmp_path, wait, expected):
    errors = errors_of(tmp_path, f"title: t\nmethod:\n  - wait: {wait}\n")
    assert any(e.startswith(expected) for e in errors), errors


@pytest.mark.parametrize("text, expected, schema_too", [b for b in BAD if b[2]],
                         ids=[b[1].split(":")[1].strip() for b in BAD if b[2]])
def test_a_schema_error_maps_to_the_same_line_through_the_node_marks(text, expected, schema_too):
    """The JSON Schema's error path, mapped through yaml's node marks, lands on the loader's line."""
    from pipelinectl.drill.loader import _Checker

    loader = _loader()
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = list(validator.iter_errors(yaml.load(text, Loader=loader)))
    assert errors
    checker = _Checker("drill.yaml", yaml.compose(text, Loader=loader))
    lines = {checker.line(tuple(e.absolute_path)) for e in errors}
    lines |= {checker.line(tuple(e.absolute_path) + (key,), at_key=True)
              for e in errors if e.validator == "additionalProperties"
              for key in (e.instance.keys() - set(e.schema.get("properties", {})))}
    assert int(expected.split(":")[0]) in lines
