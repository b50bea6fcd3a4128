"""`pipelinectl config ...` through the installed executable: contexts, validation, redaction."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.support.cli import (
    CliEnv,
    cli_fixture,  # noqa: F401  (the `cli` fixture)
)

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema.Draft202012Validator(json.loads((ROOT / "docs" / "schema" / "output.schema.json").read_text()))


def config_of(cli: CliEnv) -> dict:
    return yaml.safe_load(cli.config_path.read_text())


def test_set_context_creates_file_0600_and_first_context_is_current(cli):
    result = cli.run("config", "set-context", "staging", "--url", "http://127.0.0.1:8765", "--token-env", "STAGING_TOKEN",
                     "-p", "orders")
    assert result.rc == 0, result
    assert "Created context 'staging'" in result.stdout
    mode = stat.S_IMODE(cli.config_path.stat().st_mode)
    assert mode == 0o600
    data = config_of(cli)
    assert data["current-context"] == "staging"
    assert data["contexts"]["staging"] == {"driver": "http", "url": "http://127.0.0.1:8765", "pipeline": "orders",
                                           "token-env": "STAGING_TOKEN"}


def test_get_contexts_current_context_use_and_delete(cli):
    assert cli.run("config", "set-context", "a", "--url", "http://127.0.0.1:1").rc == 0
    assert cli.run("config", "set-context", "b", "--url", "https://plane.example:8443").rc == 0
    listed = cli.run("config", "get-contexts")
    assert listed.rc == 0, listed
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert rows[0][:2] == ["*", "a"] and rows[1][0] == "b"
    assert cli.run("config", "current-context").stdout == "a\n"
    used = cli.run("config", "use-context", "b")
    assert used.rc == 0 and "Switched to context 'b'" in used.stdout
    assert cli.run("config", "current-context").stdout == "b\n"
    as_json = cli.run("config", "get-contexts", "-o", "json")
    VALIDATOR.validate(as_json.json())
    assert as_json.json()["current_context"] == "b"
    assert cli.run("config", "get-contexts", "-o", "name").stdout == "context/a\ncontext/b\n"
    deleted = cli.run("config", "delete-context", "b")
    assert deleted.rc == 0 and "was the current context" in deleted.stdout
    assert config_of(cli)["current-context"] is None
    assert cli.run("config", "current-context").rc == 2


def test_env_var_and_flag_select_context_per_run(cli):
    cli.run("config", "set-context", "a", "--url", "http://127.0.0.1:1")
    cli.run("config", "set-context", "b", "--url", "http://127.0.0.1:2")
    assert cli.run("config", "current-context", env={"PIPELINECTL_CONTEXT": "b"}).stdout == "b\n"
    assert cli.run("--context", "b", "config", "current-context").stdout == "b\n"
    assert config_of(cli)["current-context"] == "a", "a per-run override never rewrites the file"


def test_config_flag_and_env_choose_the_file(cli, tmp_path):
    other = tmp_path / "elsewhere.yaml"
    assert cli.run("--config", str(other), "config", "set-context", "x", "--url", "http://127.0.0.1:1").rc == 0
    assert other.exists() and not cli.config_path.exists()
    assert cli.run("config", "current-context", env={"PIPELINECTL_CONFIG": str(other)}).stdout == "x\n"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--url", "http://x", "--token-env", "A", "--token-file", "/f"], "one credential source"),
        (["--driver", "nosuch", "--url", "http://x"], "driver 'nosuch' is not installed"),
        (["--url", "ftp://x"], "http:// or https://"),
        (["--url", "127.0.0.1:8765"], "has no scheme"),
        (["--url", "http://x:notaport"], "invalid port"),
        (["--driver", "nats", "--url", "http://x"], "not http://"),
        (["--url", "http://x", "--token-env", "not a var"], "not an environment variable name"),
        (["--url", "http://x", "--ca-file", "/no/such/ca.pem"], "does not exist"),
        (["--url", "http://x", "--header", "novalue"], "not NAME=VALUE"),
        (["--url", "http://x", "--header", "Authorization=Bearer abc"], "set by pipelinectl itself"),
        (["--url", "http://x", "--set", "novalue"], "not KEY=VALUE"),
        ([], "--url is required"),
    ],
)
def test_set_context_validates_before_writing(cli, args, fragment):
    result = cli.run("config", "set-context", "bad", *args)
    assert result.rc == 2, result
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not cli.config_path.exists(), "nothing written on bad input"


def test_invalid_input_leaves_an_existing_context_unchanged(cli):
    cli.run("config", "set-context", "prod", "--url", "https://plane:8443", "--token-env", "PROD_TOKEN")
    before = cli.config_path.read_bytes()
    result = cli.run("config", "set-context", "prod", "--driver", "nats")  # https is not a nats URL
    assert result.rc == 2
    assert cli.config_path.read_bytes() == before


def test_set_context_modifies_only_given_fields(cli):
    cli.run("config", "set-context", "prod", "--url", "https://plane:8443", "--token-env", "PROD_TOKEN", "-p", "orders")
    result = cli.run("config", "set-context", "prod", "--token-file", "tok.txt", "--set", "retries=2", "--header", "X-Team=pay")
    assert result.rc == 0, result
    assert "Modified context 'prod'" in result.stdout
    ctx = config_of(cli)["contexts"]["prod"]
    assert ctx["url"] == "https://plane:8443" and ctx["pipeline"] == "orders"
    assert "token-env" not in ctx, "a new credential source replaces the old one"
    assert ctx["token-file"] == str(cli.root / "tok.txt")
    assert ctx["settings"] == {"retries": 2} and ctx["headers"] == {"X-Team": "pay"}
    assert "does not exist yet" in result.stderr


def test_view_shows_sources_never_secrets(cli):
    secret = "tok-very-secret-98765"
    cli.run("config", "set-context", "exec", "--url", "https://plane:8443", "--token-exec", f"echo {secret}",
            "--header", "X-Api-Key=headersecret123", "--set", "password=p4ssw0rd-value")
    cli.run("config", "set-context", "env", "--url", "https://plane:8443", "--token-env", "PLANE_TOKEN")
    for fmt in ("table", "json", "yaml"):
        result = cli.run("config", "view", "-o", fmt)
        assert result.rc == 0, result
        for leaked in (secret, "headersecret123", "p4ssw0rd-value"):
            assert leaked not in result.output, (fmt, leaked)
        assert "exec:[REDACTED]" in result.stdout and "env:PLANE_TOKEN" in result.stdout
    data = cli.run("config", "view", "-o", "json").json()
    VALIDATOR.validate(data)
    assert {c["name"]: c["credentials"] for c in data["contexts"]} == {"env": "env:PLANE_TOKEN",
                                                                       "exec": "exec:[REDACTED]"}
    listed = cli.run("config", "get-contexts", "-o", "wide")
    assert secret not in listed.output


def test_insecure_is_warned_at_set_and_on_use(cli):
    result = cli.run("config", "set-context", "lab", "--url", "https://10.0.0.1:8443", "--insecure-skip-tls-verify")
    assert result.rc == 0
    assert "TLS certificate verification is OFF" in result.stderr
    assert config_of(cli)["contexts"]["lab"]["insecure-skip-tls-verify"] is True
    back = cli.run("config", "set-context", "lab", "--verify-tls")
    assert back.rc == 0 and "OFF" not in back.stderr
    assert "insecure-skip-tls-verify" not in config_of(cli)["contexts"]["lab"]


def test_protected_is_set_shown_and_lifted(cli):
    made = cli.run("config", "set-context", "prod", "--url", "https://plane.example:8443", "--protected")
    assert made.rc == 0 and "it is protected" in made.stdout, made
    assert config_of(cli)["contexts"]["prod"]["protected"] is True
    assert cli.run("config", "set-context", "lab", "--url", "http://127.0.0.1:1").rc == 0
    as_json = cli.run("config", "get-contexts", "-o", "json").json()
    VALIDATOR.validate(as_json)
    assert {c["name"]: c["protected"] for c in as_json["items"]} == {"lab": False, "prod": True}
    table = cli.run("config", "get-contexts").stdout.splitlines()
    assert table[0].split()[:3] == ["CURRENT", "NAME", "PROTECTED"]
    rows = {row.split()[-6]: row.split()[-5] for row in table[1:]}  # NAME PROTECTED DRIVER URL PIPELINE CREDENTIALS
    assert rows == {"lab": "-", "prod": "yes"}
    assert "protected: true" in cli.run("config", "view").stdout
    assert cli.run("config", "set-context", "prod", "--no-protected").rc == 0
    assert "protected" not in config_of(cli)["contexts"]["prod"]


def test_world_readable_config_is_warned(cli):
    cli.run("config", "set-context", "a", "--url", "http://127.0.0.1:1")
    os.chmod(cli.config_path, 0o644)
    result = cli.run("config", "get-contexts")
    assert result.rc == 0
    assert "readable by other users" in result.stderr and "chmod 600" in result.stderr


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("contexts: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("surprise: 1\n", "unknown key(s): surprise"),
        ("contexts:\n  a: {url: http://x, colour: red}\n", "unknown key(s): colour"),
        ("contexts:\n  a: {url: http://x, headers: [1]}\n", "'headers' must be a mapping"),
        ("contexts:\n  a: {url: http://x, insecure-skip-tls-verify: maybe}\n", "must be true or false"),
        ("contexts:\n  a: {url: http://x, protected: 'yes please'}\n", "'protected' must be true or false"),
    ],
)
def test_malformed_config_is_a_one_line_usage_error(cli, text, fragment):
    cli.config_path.parent.mkdir(parents=True, exist_ok=True)
    cli.config_path.write_text(text)
    os.chmod(cli.config_path, 0o600)
    result = cli.run("config", "get-contexts")
    assert result.rc == 2, result
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_use_and_delete_unknown_context_are_not_found(cli):
    cli.run("config", "set-context", "a", "--url", "http://127.0.0.1:1")
    for args in (("use-context", "zzz"), ("delete-context", "zzz")):
        result = cli.run("config", *args)
        assert result.rc == 3, result
        assert "context 'zzz' not found" in result.stderr and "known contexts: a" in result.stderr


def test_token_over_plain_http_to_a_remote_host_is_warned(cli):
    remote = cli.run("config", "set-context", "remote", "--url", "http://plane.internal:8765", "--token-env", "T")
    assert remote.rc == 0 and "sends its token over plain http" in remote.stderr
    local = cli.run("config", "set-context", "local", "--url", "http://127.0.0.1:8765", "--token-env", "T")
    assert local.rc == 0 and local.stderr == ""


def _readme_commands(prefix: str) -> list[list[str]]:
    """The README's shell lines starting with `prefix`, joined across `\\` continuations, as argv."""
    import re
    import shlex

    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.strip().startswith(prefix)]


def test_the_readme_set_context_examples_work_when_pasted(cli):
    commands = _readme_commands("pipelinectl config set-context")
    assert len(commands) >= 3 and any("--ca-file" in " ".join(c) for c in commands) is False, \
        "a --ca-file example needs a CA bundle that exists; the README explains it in prose"
    for argv in commands:
        result = cli.run(*argv[1:])
        assert result.rc == 0, result


def test_a_missing_ca_file_is_refused_saying_what_it_is_for(cli):
    result = cli.run("config", "set-context", "prod", "--url", "https://plane.example.internal",
                     "--ca-file", "/etc/ssl/plane-ca.pem")
    assert result.rc == 2, result
    assert "--ca-file: /etc/ssl/plane-ca.pem does not exist" in result.stderr
    assert "CA bundle" in result.stderr and "leave --ca-file out" in result.stderr
    assert not cli.config_path.exists()
