"""`pipelinectl-NAME` executables on PATH: found, run with the context's settings, never a secret."""

from __future__ import annotations

import os
import stat

import pytest

from pipelinectl import plugins
from pipelinectl.errors import UsageError

SCRIPT = """#!/bin/sh
printf 'arg=%s\\n' "$@" > "$HI_OUT"
env | grep '^PIPELINECTL_' | sort >> "$HI_OUT"
exit 3
"""


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    hi = folder / "pipelinectl-hi"
    hi.write_text(SCRIPT)
    hi.chmod(hi.stat().st_mode | stat.S_IXUSR)
    (folder / "pipelinectl-notexec").write_text("#!/bin/sh\n")  # not executable: not a plugin
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HI_OUT", str(tmp_path / "hi.out"))
    return folder


def test_find_external_only_finds_executables_by_plain_name(bin_dir):
    assert plugins.find_external("hi") == str(bin_dir / "pipelinectl-hi")
    assert plugins.find_external("notexec") is None
    assert plugins.find_external("nothing-here") is None
    for bad in ("", "-hi", "../hi", "x/hi"):
        assert plugins.find_external(bad) is None
    found = plugins.external_commands()
    assert found["hi"] == str(bin_dir / "pipelinectl-hi") and "notexec" not in found


def test_run_external_passes_args_settings_and_exit_code_but_no_secret(bin_dir, tmp_path):
    code = plugins.run_external("hi", ["two words", "--flag"], {
        "PIPELINECTL_CONTEXT": "prod", "PIPELINECTL_URL": "https://plane.example", "PIPELINECTL_TOKEN": "s3cret",
        "PIPELINECTL_API_KEY": "s3cret2"})
    assert code == 3
    out = (tmp_path / "hi.out").read_text().splitlines()
    assert out[:2] == ["arg=two words", "arg=--flag"]
    assert "PIPELINECTL_CONTEXT=prod" in out and "PIPELINECTL_URL=https://plane.example" in out
    assert "PIPELINECTL_PLUGIN=hi" in out
    assert not [line for line in out if "s3cret" in line]


def test_plugin_list_shows_externals(bin_dir):
    listed = [p for p in plugins.list_plugins() if p.type == "external"]
    assert [(p.name, p.target) for p in listed] == [("hi", str(bin_dir / "pipelinectl-hi"))]


def test_run_external_of_a_missing_command_is_a_usage_error(bin_dir):
    with pytest.raises(UsageError, match="unknown command 'nope'"):
        plugins.run_external("nope", [], {})
