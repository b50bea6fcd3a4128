"""`pipelinectl drill run` as a process, with shell steps only (no plane needed): output that cannot
be written never changes the outcome or skips a rollback; --junit is checked before anything runs."""

from __future__ import annotations

import json
import subprocess
import textwrap

from tests.support.cli import CliEnv, executable


def drill(tmp_path, text):
    path = tmp_path / "drill.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_closed_stdout_keeps_the_exit_code_and_the_rollbacks(tmp_path):
    cli = CliEnv(tmp_path / "user")
    cli.set_context("nowhere", "http://127.0.0.1:9")
    mark = tmp_path / "rolled-back"
    path = drill(tmp_path, f"""\
        title: piped into head
        method:
          - shell: 'true'
          - sleep: 0.5
          - shell: exit 1
        rollbacks:
          - shell: touch {mark}
        """)
    proc = subprocess.Popen([executable(), "drill", "run", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=cli.env(), cwd=tmp_path)
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(30) == 9, err
    assert mark.exists()
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_an_unwritable_junit_path_is_refused_before_the_drill_runs(tmp_path):
    cli = CliEnv(tmp_path / "user")
    cli.set_context("nowhere", "http://127.0.0.1:9")
    mark = tmp_path / "ran"
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = drill(tmp_path, f"title: t\nmethod:\n  - shell: touch {mark}\n")
    result = cli.run("drill", "run", str(path), "--junit", str(blocker / "report.xml"))
    assert result.rc == 2, result
    assert result.stderr.startswith("error: --junit: cannot write")
    assert not mark.exists()


def test_shell_steps_see_the_drill_context_and_variables(tmp_path):
    cli = CliEnv(tmp_path / "user")
    cli.set_context("nowhere", "http://127.0.0.1:9")
    path = drill(tmp_path, """\
        title: env
        variables: {who: operator}
        method:
          - shell: echo "$PIPELINECTL_CONTEXT $DRILL_WHO ${who}"
        """)
    result = cli.run("drill", "run", str(path), "--var", "who=on call", "-o", "json")
    assert result.rc == 0, result
    step = result.json()["steps"][0]
    assert step["message"] == "nowhere on call on call"
    bad = cli.run("drill", "run", str(path), "--var", "who")
    assert bad.rc == 2 and "must look like NAME=VALUE" in bad.stderr


def test_journal_file_and_a_terminal_shows_the_running_step(tmp_path):
    cli = CliEnv(tmp_path / "user")
    cli.set_context("nowhere", "http://127.0.0.1:9")
    path = drill(tmp_path, """\
        title: on a terminal
        method:
          - name: a slow step
            sleep: 1.5
        rollbacks:
          - shell: echo undone
        """)
    journal = tmp_path / "out" / "journal.json"
    result = cli.run_pty("drill", "run", str(path), "--journal", str(journal))
    assert result.rc == 0, result
    text = result.stdout
    assert "running" in text and "a slow step" in text
    assert "\r\x1b[2K[1/2] method" in text  # the running line is replaced by its outcome
    assert "[2/2] rollback            ok" in text
    saved = json.loads(journal.read_text())
    assert saved["kind"] == "DrillJournal" and saved["status"] == "passed"
    assert [s["outcome"] for s in saved["steps"]] == ["passed", "passed"]
    audit = cli.audit_lines()[-1]  # who ran which drill where, and how it ended
    assert (audit["verb"], audit["target"], audit["context"]) == ("drill run", "on a terminal", "nowhere")
    assert audit["result"] == "passed (exit 0)" and audit["arguments"]["file"] == str(path)


def test_an_interrupted_step_ends_its_running_line_as_interrupted(tmp_path):
    cli = CliEnv(tmp_path / "user")
    cli.set_context("nowhere", "http://127.0.0.1:9")
    path = drill(tmp_path, """\
        title: interrupted on a terminal
        method:
          - shell: echo first
          - name: hold the fault
            sleep: 60
          - shell: echo never
        rollbacks:
          - shell: echo undone
        """)
    result = cli.run_pty("drill", "run", str(path), interrupt_after="hold the fault")
    assert result.rc == 130, result
    lines = result.stdout.split("\n")
    held = [line for line in lines if "hold the fault" in line]
    assert held and held[-1].rsplit("\r\x1b[2K", 1)[-1].startswith("[2/4] method"), held
    assert "INTERRUPTED" in held[-1], held  # the running line ends as interrupted, not left running
    assert any("[3/4]" in line and "skipped" in line for line in lines), lines
    assert any("[4/4] rollback" in line and " ok " in line for line in lines), lines


def test_sleep_takes_a_variable(tmp_path):
    cli = CliEnv(tmp_path / "user")
    cli.set_context("nowhere", "http://127.0.0.1:9")
    path = drill(tmp_path, """\
        title: hold for a while
        variables: {hold: 0.2s}
        method:
          - sleep: ${hold}
        """)
    assert cli.run("drill", "validate", str(path)).rc == 0
    result = cli.run("drill", "run", str(path), "--var", "hold=1", "-o", "json")
    assert result.rc == 0, result
    (step,) = result.json()["steps"]
    assert step["outcome"] == "passed" and step["command"] == ["sleep", "1"] and step["duration_seconds"] >= 1
    bad = cli.run("drill", "run", str(path), "--var", "hold=soon", "-o", "json")
    assert bad.rc == 9, bad
    assert "'soon' is not a duration" in bad.json()["steps"][0]["message"]
    unknown = drill(tmp_path, """\
        title: no such variable
        method:
          - sleep: ${nope}
        """)
    refused = cli.run("drill", "validate", str(unknown))
    assert refused.rc == 2 and "unknown variable '${nope}'" in refused.stderr, refused
