"""Property tests over config files (pipelinectl/config.py).

A config file is hand-edited at 3 AM. Whatever it holds (any YAML value, any
bytes), loading it gives a Config or a one-line UsageError naming the file,
never another exception; and a Config that loads survives a save/load round trip.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipelinectl.config import Config, Context, load_config, save_config
from pipelinectl.errors import ExitCode, UsageError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CONTEXT_KEYS = ["driver", "url", "pipeline", "namespace", "token-env", "token-file", "token-exec", "ca-file",
                "insecure-skip-tls-verify", "headers", "settings"]
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10))
key = st.one_of(st.sampled_from(CONTEXT_KEYS + ["current-context", "contexts", "url "]), st.text(max_size=8),
                st.integers(), st.booleans(), st.none())
text_key = st.one_of(st.sampled_from(CONTEXT_KEYS), st.text(max_size=8))
value = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(key, inner, max_size=4)), max_leaves=10)
context_body = st.one_of(value, st.dictionaries(st.sampled_from(CONTEXT_KEYS), value, max_size=6),
                         st.dictionaries(text_key, value, max_size=4),
                         st.dictionaries(st.integers(), value, min_size=1, max_size=2))
document = st.one_of(
    value,
    st.fixed_dictionaries({"contexts": st.dictionaries(key, context_body, max_size=3)},
                          optional={"current-context": value}),
)


def _load_text(text: bytes) -> Config | UsageError:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(text)
        path.chmod(0o600)
        try:
            return load_config(path)
        except UsageError as err:
            assert err.exit_code == ExitCode.USAGE
            line = err.one_line()
            assert line and "\n" not in line
            assert str(path) in line  # the error names the file
            return err


@FUZZ
@given(document)
@example({"contexts": {"a": {"headers": {"X": None}}}})
def test_any_yaml_document_loads_or_is_a_usage_error(doc):
    text = yaml.safe_dump(doc, allow_unicode=True).encode()
    loaded = _load_text(text)
    if isinstance(loaded, Config):
        for name, ctx in loaded.contexts.items():
            assert isinstance(name, str) and isinstance(ctx, Context)
            assert isinstance(ctx.url, str) and isinstance(ctx.headers, dict)
        assert loaded.current_context is None or isinstance(loaded.current_context, str)


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode()))
@example(b"contexts: [\n")
@example(b"\xff\xfe\x00")
@example(b"a: &x [*x]\n")
@example(b"contexts: {a: {url: !!python/object:os.system x}}\n")
def test_any_bytes_load_or_are_a_usage_error(raw):
    _load_text(raw)



@pytest.mark.parametrize("raw", [
    pytest.param(yaml.safe_dump({"contexts": {"a": {1: "x", None: "y"}}}).encode(), id="mixed-key-types"),
    pytest.param(b"[" * 5000, id="deep-nesting"),
    pytest.param(b"contexts:\n  a: {url: [1, 2]}\n", id="url-not-a-string"),
])
def test_edge_files_found_by_fuzzing(raw):
    """Inputs fuzzing found (each once a traceback), kept as fixed cases."""
    _load_text(raw)


names = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
safe_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)


@FUZZ
@given(st.dictionaries(names, st.builds(
    dict, url=safe_text, pipeline=st.one_of(st.none(), safe_text),
    token_env=st.one_of(st.none(), safe_text), insecure_skip_tls_verify=st.booleans(),
    headers=st.dictionaries(safe_text, safe_text, max_size=2)), max_size=3))
def test_saved_config_reads_back_the_same(contexts):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        config = Config(path=path, current_context=next(iter(contexts), None),
                        contexts={n: Context(name=n, **body) for n, body in contexts.items()})
        save_config(config)
        assert path.stat().st_mode & 0o077 == 0  # 0600: the file names credential sources
        again = load_config(path)
        assert again.current_context == config.current_context
        assert {n: c.to_yaml_dict() for n, c in again.contexts.items()} == \
               {n: c.to_yaml_dict() for n, c in config.contexts.items()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()) | st.binary(max_size=120),
       st.sampled_from([("config", "view"), ("config", "get-contexts"), ("config", "current-context"),
                        ("status",), ("dlq", "list")]))
def test_any_config_file_through_the_cli_is_output_or_one_usage_line(raw, argv):
    """The whole CLI over a fuzzed config file (no plane is reachable: every url is refused or invalid)."""
    import contextlib
    import io
    import os
    from unittest import mock

    from pipelinectl.__main__ import main

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(raw)
        path.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINECTL_")}
        env.update(HOME=tmp, XDG_CONFIG_HOME=tmp, XDG_STATE_HOME=tmp, XDG_CACHE_HOME=tmp)
        out, err = io.StringIO(), io.StringIO()
        with mock.patch.dict(os.environ, env, clear=True), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            rc = main(["--config", str(path), "--timeout", "1", *argv])
    assert "Traceback" not in out.getvalue() + err.getvalue()
    assert rc in (0, 2, 3, 6, 7), (rc, err.getvalue())
    if rc:
        lines = [line for line in err.getvalue().splitlines() if not line.startswith("warning: ")]
        assert len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
