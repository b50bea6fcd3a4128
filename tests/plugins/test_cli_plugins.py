"""Plugins through the installed `pipelinectl` executable (subprocess, isolated home and site)."""

from __future__ import annotations

import os
import stat

import pytest
import yaml

from tests.plugins.support import install_example, write_distribution
from tests.support.cli import CliEnv

SECRET = "tok-3f9a-very-secret"


@pytest.fixture
def cli(tmp_path) -> CliEnv:
    """A home whose only plugins are the docs' example, a broken one and an external executable."""
    env = CliEnv(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    name = install_example(site)
    write_distribution(site, "broken-plugin", "0.0.1", {"pipelinectl.drivers": {"broken": "no_such_mod:Plane"},
                                                         "pipelinectl.commands": {"brokencmd": "no_such_mod:app"}})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hi = bin_dir / "pipelinectl-hi"
    hi.write_text('#!/bin/sh\nprintf "arg=%s\\n" "$@"\nenv | grep "^PIPELINECTL_" | sort\nexit 5\n')
    hi.chmod(hi.stat().st_mode | stat.S_IXUSR)
    token_file = tmp_path / "token"
    token_file.write_text(SECRET)
    token_file.chmod(0o600)
    env.extra_env.update(
        PYTHONPATH=str(site),
        PIPELINECTL_LOAD_PLUGINS=f"{name},broken-plugin",
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    )
    env.config_path.parent.mkdir(parents=True, exist_ok=True)
    env.config_path.write_text(yaml.safe_dump({"current-context": "h", "contexts": {
        "h": {"driver": "hello", "url": "http://127.0.0.1:9", "pipeline": "orders", "namespace": "ns1",
              "token-file": str(token_file)},
        "b": {"driver": "broken", "url": "http://127.0.0.1:9"}}}))
    env.config_path.chmod(0o600)
    return env


def test_plugin_list_reports_versions_verbs_and_the_broken_one(cli):
    result = cli.run("plugin", "list", "-o", "json")
    assert result.rc == 0, result
    items = {(p["name"], p["type"]): p for p in result.json()["items"]}
    assert items[("hello", "driver")]["capabilities"] == ["status"]
    assert items[("hello", "driver")]["version"] == "0.1.0"
    assert items[("hello", "command")]["error"] is None
    assert "no_such_mod" in items[("broken", "driver")]["error"]
    assert items[("hi", "external")]["distribution"] == "PATH"
    assert "warning: driver plugin 'broken' (broken-plugin) failed to load" in result.stderr

    table = cli.run("plugin", "list")
    assert table.rc == 0, table
    assert "hello" in table.stdout and "pipelinectl-hello" in table.stdout and "ModuleNotFoundError" in table.stdout


def test_plugin_command_group_runs(cli):
    result = cli.run("hello", "greet", "World")
    assert result.rc == 0, result
    assert result.stdout == "hello, World\n"


def test_unsupported_verb_exits_7_naming_driver_and_verb(cli):
    for argv, verb in ((("saga", "list"), "saga list"), (("dlq", "list"), "dlq list")):
        result = cli.run(*argv)
        assert result.rc == 7, result
        assert result.stderr == f"error: '{verb}' is not supported by the hello driver\n"


def test_a_context_on_the_broken_driver_fails_with_its_name_others_still_work(cli):
    result = cli.run("--context", "b", "saga", "list")
    assert result.rc == 1, result
    assert "driver plugin 'broken' (broken-plugin) failed to load" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli.run("hello", "greet", "x").rc == 0
    assert cli.run("saga", "list").rc == 7


def test_a_broken_command_plugin_is_one_line_naming_it(cli):
    result = cli.run("brokencmd", "x")
    assert result.rc == 1, result
    assert result.stderr.startswith("error: command plugin 'brokencmd' (broken-plugin) failed to load: "
                                    "ModuleNotFoundError: No module named 'no_such_mod'")
    assert len(result.stderr.splitlines()) == 1
    listed = cli.run("plugin", "list", "--errors", "-o", "json")
    assert listed.rc == 0, listed
    assert sorted((p["name"], p["type"]) for p in listed.json()["items"]) == [("broken", "driver"),
                                                                             ("brokencmd", "command")]


def test_external_executable_gets_context_settings_not_the_token(cli):
    result = cli.run("hi", "a", "b c")
    assert result.rc == 5, result  # its exit code is ours
    lines = result.stdout.splitlines()
    assert lines[:2] == ["arg=a", "arg=b c"]
    for expected in ("PIPELINECTL_CONTEXT=h", "PIPELINECTL_DRIVER=hello", "PIPELINECTL_URL=http://127.0.0.1:9",
                     "PIPELINECTL_PIPELINE=orders", "PIPELINECTL_NAMESPACE=ns1"):
        assert expected in lines, result
    assert SECRET not in result.stdout + result.stderr


def test_unknown_command_is_a_usage_error(cli):
    result = cli.run("no-such-command")
    assert result.rc == 2 and "unknown command 'no-such-command'" in result.stderr


@pytest.mark.parametrize("argv, verb", [
    (("replay", "cancel", "replay-1"), "replay cancel"),
    (("replay", "show", "replay-1"), "replay show"),
    (("saga", "force-fail", "s1", "--reason", "outage", "--yes"), "saga force-fail"),
    (("saga", "retry", "s1"), "saga retry"),
    (("saga", "force-complete", "s1", "--reason", "done by hand", "--yes"), "saga force-complete"),
    (("saga", "inspect", "s1"), "saga inspect"),
    (("dlq", "inspect", "d1"), "dlq inspect"),
])
def test_an_unsupported_verb_is_named_as_the_operator_ran_it(cli, argv, verb):
    """Not the read a verb does first (`replay cancel` reads the job, `saga force-fail` the saga)."""
    result = cli.run(*argv)
    assert result.rc == 7, result
    assert result.stderr.startswith(f"error: '{verb}' is not supported by the hello driver"), result.stderr


def test_a_context_url_must_use_a_scheme_its_driver_serves(cli):
    """The example driver declares url_schemes = ("http", "https"): set-context holds it to them."""
    refused = cli.run("config", "set-context", "x", "--driver", "hello", "--url", "nats://127.0.0.1:4222")
    assert refused.rc == 2, refused
    assert "the hello driver takes http:// or https:// URLs, not nats://" in refused.stderr
    names = [c["name"] for c in cli.run("config", "get-contexts", "-o", "json").json()["items"]]
    assert "x" not in names, "a refused set-context changes nothing"
    accepted = cli.run("config", "set-context", "x", "--driver", "hello", "--url", "https://hello.example")
    assert accepted.rc == 0, accepted


def test_the_docs_example_is_the_installed_example():
    """docs/plugins.md shows the example plugin's code exactly as the tests install and run it."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "plugins.md").read_text()
    shown = doc.split("`pipelinectl_hello/__init__.py`:\n\n```python\n", 1)[1].split("```", 1)[0]
    source = (root / "tests/plugins/example/pipelinectl-hello/pipelinectl_hello/__init__.py").read_text()
    assert shown.strip() == source.split("\n", 1)[1].strip()  # the file's first line is its docstring
