"""Config parsing and credential resolution (pipelinectl/config.py), in process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipelinectl.config import Config, Context, config_path, load_config, read_token, save_config, state_dir
from pipelinectl.errors import NotFoundError, UsageError
from pipelinectl.redact import REDACTED, redact


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_missing_file_is_an_empty_config(tmp_path):
    config = load_config(tmp_path / "none.yaml")
    assert config.contexts == {} and config.current_context is None and config.warnings == []


def test_full_context_round_trips(tmp_path):
    path = write(tmp_path / "c.yaml", """
current-context: prod
contexts:
  prod:
    driver: http
    url: https://plane:8443
    pipeline: orders
    namespace: payments
    token-file: /run/secrets/plane
    ca-file: /etc/ca.pem
    insecure-skip-tls-verify: false
    headers: {X-Team: pay, X-Num: 7}
    settings: {retries: 2}
  lab:
    url: http://127.0.0.1:8765
    token-env: LAB_TOKEN
""")
    config = load_config(path)
    prod = config.get("prod")
    assert prod.url == "https://plane:8443" and prod.namespace == "payments" and prod.ca_file == "/etc/ca.pem"
    assert prod.headers == {"X-Team": "pay", "X-Num": "7"}
    assert prod.settings == {"retries": 2}
    assert config.get("lab").driver == "http"  # the default driver
    save_config(config, tmp_path / "out.yaml")
    again = load_config(tmp_path / "out.yaml")
    assert again.contexts == config.contexts and again.current_context == "prod"


def test_null_values_mean_unset(tmp_path):
    path = write(tmp_path / "c.yaml", "contexts:\n  a:\n    url: http://x\n    pipeline:\n    driver:\n")
    ctx = load_config(path).get("a")
    assert ctx.pipeline is None and ctx.driver == "http"


@pytest.mark.parametrize(
    "text",
    [
        "contexts: {a: {url: [1, 2]}}",
        "contexts: {a: {headers: {X: [1]}}}",
        "contexts: {a: {settings: {1: x}}}",
        "contexts: [a]",
        "current-context: [a]",
        "contexts: {a: 5}",
        "[" * 3000,
    ],
)
def test_wrong_types_are_usage_errors(tmp_path, text):
    with pytest.raises(UsageError):
        load_config(write(tmp_path / "c.yaml", text))


def test_unknown_context_lists_known_ones(tmp_path):
    config = Config(path=tmp_path / "c.yaml", contexts={"a": Context(name="a"), "b": Context(name="b")})
    with pytest.raises(NotFoundError) as info:
        config.get("zzz")
    assert "known contexts: a, b" in info.value.one_line()


def test_group_readable_file_warns(tmp_path):
    config = load_config(write(tmp_path / "c.yaml", "contexts: {}\n", 0o640))
    assert any("readable by other users" in w for w in config.warnings)


def test_save_is_0600_and_atomic(tmp_path):
    target = tmp_path / "sub" / "config.yaml"
    save_config(Config(path=target, current_context="a", contexts={"a": Context(name="a", url="http://x")}))
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in target.parent.iterdir()] == ["config.yaml"], "no temp file left behind"


def test_xdg_paths(monkeypatch, tmp_path):
    monkeypatch.delenv("PIPELINECTL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert config_path() == tmp_path / "cfg" / "pipelinectl" / "config.yaml"
    assert state_dir() == tmp_path / "state" / "pipelinectl"
    monkeypatch.setenv("PIPELINECTL_CONFIG", str(tmp_path / "env.yaml"))
    assert config_path() == tmp_path / "env.yaml"
    assert config_path(str(tmp_path / "flag.yaml")) == tmp_path / "flag.yaml"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    monkeypatch.delenv("PIPELINECTL_CONFIG")
    assert config_path() == Path.home() / ".config" / "pipelinectl" / "config.yaml"


# -- credentials ------------------------------------------------------------------
def test_token_from_env_is_registered_for_redaction(monkeypatch):
    monkeypatch.setenv("UNIT_TOKEN_A", "tok-from-env-11111")
    assert read_token(Context(name="c", token_env="UNIT_TOKEN_A")) == "tok-from-env-11111"
    assert redact("sent tok-from-env-11111 to x") == f"sent {REDACTED} to x"


def test_token_env_unset_names_the_variable_not_a_value(monkeypatch):
    monkeypatch.delenv("UNIT_TOKEN_MISSING", raising=False)
    with pytest.raises(UsageError, match=r"\$UNIT_TOKEN_MISSING, which is not set"):
        read_token(Context(name="c", token_env="UNIT_TOKEN_MISSING"))


def test_token_from_file(tmp_path):
    path = write(tmp_path / "tok", "tok-from-file-22222\n")
    assert read_token(Context(name="c", token_file=str(path))) == "tok-from-file-22222"
    with pytest.raises(UsageError, match="is empty"):
        read_token(Context(name="c", token_file=str(write(tmp_path / "empty", "  \n"))))
    with pytest.raises(UsageError, match="cannot read token file"):
        read_token(Context(name="c", token_file=str(tmp_path / "missing")))


def test_token_from_exec(tmp_path):
    script = write(tmp_path / "tok.py", "print('tok-from-exec-33333')\n")
    ctx = Context(name="c", token_exec=f"{sys.executable} {script}")
    assert read_token(ctx) == "tok-from-exec-33333"


@pytest.mark.parametrize(
    "code, fragment",
    [("import sys; sys.exit(3)", "exited with 3"), ("pass", "printed no token"),
     ("import time; time.sleep(5)", "timed out")],
)
def test_token_exec_failures_never_echo_the_command(tmp_path, code, fragment):
    script = write(tmp_path / "tok.py", code + "\n")
    ctx = Context(name="c", token_exec=f"{sys.executable} {script} --secret-arg s3cr3t-in-argv")
    with pytest.raises(UsageError) as info:
        read_token(ctx, timeout=0.5)
    assert fragment in info.value.message
    assert "s3cr3t-in-argv" not in info.value.one_line()


def test_credential_source_hides_exec_command():
    assert Context(name="c", token_exec="vault read secret").credential_source() == "exec:[REDACTED]"
    assert Context(name="c", token_env="X").credential_source() == "env:X"
    assert Context(name="c").credential_source() is None


# A token must be one line of printable ASCII without inner spaces: anything else cannot travel in an
# HTTP header, and the HTTP layer's error would quote it. Each is refused where it is read, naming the
# source and never the value.
BAD_TOKENS = {
    "a notice line first": "notice: refreshed cache\nvwr-S3cr3t-4e1f9a",
    "a NUL": "vwr-S3cr3t\x00-4e1f9a",
    "a non-ASCII letter": "vwr-S3cr3t-ä4e1f9a",
    "a space inside": "vwr-S3cr3t 4e1f9a",
    "a tab inside": "vwr-S3cr3t\t4e1f9a",
    "a DEL": "vwr-S3cr3t\x7f4e1f9a",
    "an escape sequence": "vwr-S3cr3t\x1b[0m4e1f9a",
    "a carriage return": "vwr-S3cr3t\r4e1f9a",
}
SECRET_PART = "S3cr3t"


def _assert_refused_naming(info, source: str) -> None:
    text = info.value.one_line()
    assert source in text, text
    assert SECRET_PART not in text and "4e1f9a" not in text, text
    assert "\n" not in text and "\x00" not in text


ENV_SAFE = {k: v for k, v in BAD_TOKENS.items() if "\x00" not in v}  # an environment cannot hold a NUL


@pytest.mark.parametrize("token", ENV_SAFE.values(), ids=ENV_SAFE.keys())
def test_bad_token_from_env_is_refused_naming_the_variable(monkeypatch, token):
    monkeypatch.setenv("UNIT_TOKEN_BAD", token)
    with pytest.raises(UsageError) as info:
        read_token(Context(name="c", token_env="UNIT_TOKEN_BAD"))
    _assert_refused_naming(info, "$UNIT_TOKEN_BAD")


@pytest.mark.parametrize("token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_bad_token_from_file_is_refused_naming_the_file(tmp_path, token):
    path = tmp_path / "tok"
    path.write_bytes(token.encode() + b"\n")
    path.chmod(0o600)
    with pytest.raises(UsageError) as info:
        read_token(Context(name="c", token_file=str(path)))
    _assert_refused_naming(info, str(path))


def test_token_file_that_is_not_text_is_refused(tmp_path):
    path = tmp_path / "tok"
    path.write_bytes(b"vwr-S3cr3t-\xff\xfe4e1f9a\n")
    with pytest.raises(UsageError) as info:
        read_token(Context(name="c", token_file=str(path)))
    _assert_refused_naming(info, str(path))


@pytest.mark.parametrize("token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_bad_token_from_exec_is_refused_naming_the_command_not_its_arguments(tmp_path, token):
    script = tmp_path / "helper.py"
    script.write_text(f"import sys; sys.stdout.buffer.write({token.encode()!r} + b'\\n')\n")
    ctx = Context(name="c", token_exec=f"{sys.executable} {script} --secret-arg s3cr3t-in-argv")
    with pytest.raises(UsageError) as info:
        read_token(ctx)
    _assert_refused_naming(info, Path(sys.executable).name)
    assert "s3cr3t-in-argv" not in info.value.one_line()


def test_exec_output_that_is_not_text_is_refused(tmp_path):
    script = tmp_path / "helper.py"
    script.write_text("import sys; sys.stdout.buffer.write(b'vwr-S3cr3t-\\xff4e1f9a\\n')\n")
    with pytest.raises(UsageError) as info:
        read_token(Context(name="c", token_exec=f"{sys.executable} {script}"))
    _assert_refused_naming(info, Path(sys.executable).name)


def test_surrounding_whitespace_is_not_part_of_the_token(monkeypatch, tmp_path):
    monkeypatch.setenv("UNIT_TOKEN_PADDED", "  tok-padded-44444\n")
    assert read_token(Context(name="c", token_env="UNIT_TOKEN_PADDED")) == "tok-padded-44444"
    path = write(tmp_path / "tok", "\ntok-padded-55555\r\n")
    assert read_token(Context(name="c", token_file=str(path))) == "tok-padded-55555"
