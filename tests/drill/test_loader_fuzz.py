"""Any YAML document is either a drill or a list of `FILE:LINE: field: message` errors — never a traceback."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelinectl.drill.loader import DrillFileError, load
from pipelinectl.errors import UsageError

KEYS = ["title", "method", "rollbacks", "hypothesis", "probes", "variables", "run", "wait", "assert", "sleep", "shell",
        "for", "target", "that", "within", "capture", "yes", "timeout", "expect_exit", "continue_on_failure", "name",
        "stage", "error_kind", "interval", "version"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 400), st.floats(allow_nan=True),
                    st.sampled_from(["status", "pause charge", "state=paused", "dlq>=1", "items.length >= 1", "30s",
                                     "${x}", "${x+1}", "dlq purge --all", "", " ", "[", "saga/x", "a]b"]),
                    st.text(max_size=8))
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=4)), children,
                                               max_size=5)),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=documents)
def test_any_document_loads_or_fails_with_located_errors(tmp_path, document):
    path = tmp_path / "fuzz.yaml"
    try:
        text = yaml.safe_dump(document, allow_unicode=True)
    except yaml.YAMLError:
        return
    path.write_text(text, encoding="utf-8")
    try:
        drill = load(path)
    except DrillFileError as exc:
        assert exc.errors and all(e.startswith(f"{path}:") for e in exc.errors), exc.errors
        assert all("\n" not in e for e in exc.errors)
    except UsageError as exc:
        assert "\n" not in exc.one_line()
    else:
        assert drill.title and drill.method


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab.[]*=!<>0123456789-_ \"'lengthcoainsxy,")), max_size=30),
       document=documents)
def test_any_assertion_parses_or_says_why_and_evaluates_without_raising(text, document):
    from pipelinectl.drill.expr import ExprError, parse

    try:
        expr = parse(text)
    except ExprError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    holds, _ = expr.evaluate(document)
    assert holds in (True, False)
