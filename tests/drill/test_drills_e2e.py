"""Drills against the real control plane (`python -m pipelinectl.server --demo` on a free port),
run by the installed `pipelinectl` as a user would: the example drills pass; a drill whose
hypothesis a fault step breaks exits 8 and its rollback restores the plane; a step error
exits 9; Ctrl-C / SIGTERM stop the method but the rollbacks still run (exit 130); every
JUnit report parses and has one test case per step.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cli import CliEnv, Result, executable, validate_output
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "docs" / "drills").glob("*.yaml"))


class Plane:
    def __init__(self, server: RunningServer, cli: CliEnv, root: Path) -> None:
        self.server, self.cli, self.root = server, cli, root

    def api(self, method: str, path: str, **kw):
        response = httpx.request(method, self.server.url + "/v1/pipelines/orders" + path,
                                 headers=self.server.headers("admin"), timeout=10, **kw)
        response.raise_for_status()
        return response.json()

    def state(self, stage: str) -> str:
        return self.api("GET", f"/stages/{stage}")["state"]

    def drill(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text))
        return path

    def run(self, path: Path, *args: str, timeout: float = 400) -> tuple[Result, dict, ET.Element]:
        report = self.root / (path.stem + ".xml")
        result = self.cli.run("drill", "run", str(path), "--junit", str(report), "-o", "json", *args, timeout=timeout)
        assert result.stdout.startswith("{"), result
        journal = result.json()
        validate_output(journal)  # the documented DrillJournal shape (docs/output.md)
        root = ET.parse(report).getroot()
        cases = root.findall("./testsuite/testcase")
        assert len(cases) == len(journal["steps"]), "one JUnit test case per step"
        return result, journal, root


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    root = tmp_path_factory.mktemp("drills-e2e")
    server = start_server(root / "server", env={"PIPELINECTL_DEMO_RATE": "6"})
    try:
        cli = CliEnv(root / "user")
        cli.set_context("demo", server.url, token=server.tokens["admin"], pipeline="orders")
        yield Plane(server, cli, root)
    finally:
        server.stop()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_drills_pass_against_the_real_plane(plane, path):
    result, journal, report = plane.run(path)
    assert result.rc == 0, result
    assert journal["status"] == "passed" and journal["exit_code"] == 0
    assert all(step["outcome"] == "passed" for step in journal["steps"]), journal["steps"]
    assert report.find("testsuite").get("failures") == "0" and report.find("testsuite").get("errors") == "0"
    # progress went to stderr (stdout is the journal): one line per step with its outcome and timing
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == len(journal["steps"])
    assert all(re.search(r"\] (hypothesis \((before|after)\)|method|rollback) +ok +\d+\.\d\ds  \S", line)
               for line in lines), lines


def test_a_fault_that_breaks_the_hypothesis_exits_8_and_the_rollback_restores_the_plane(plane):
    plane.api("POST", "/stages/notify/resume", json={})
    path = plane.drill("broken.yaml", """\
        title: notify keeps running (deliberately broken)
        hypothesis:
          probes:
            - name: notify is running
              assert: {run: status orders, that: "stages[name=notify].state == running"}
        method:
          - name: "fault: someone pauses notify"
            shell: $PIPELINECTL pause notify
          - wait: {target: notify, for: state=paused, timeout: 20s}
        rollbacks:
          - name: resume notify
            run: resume notify
        """)
    result, journal, report = plane.run(path)
    assert result.rc == 8, result
    assert journal["status"] == "hypothesis_not_met"
    phases = [(s["phase"], s["outcome"]) for s in journal["steps"]]
    assert phases == [("hypothesis-before", "passed"), ("method", "passed"), ("method", "passed"),
                      ("hypothesis-after", "failed"), ("rollback", "passed")]
    assert plane.state("notify") == "running"  # the rollback really ran against the plane
    cases = report.findall("./testsuite/testcase")
    assert cases[3].find("failure") is not None and "actual: \"paused\"" in cases[3].find("failure").text
    assert "HYPOTHESIS NOT MET" in result.stderr


def test_a_step_error_exits_9_skips_the_rest_and_rolls_back(plane):
    path = plane.drill("error.yaml", """\
        title: a typo in the runbook
        method:
          - run: pause notify
          - run: pause notfy
          - run: scale notify 3
        rollbacks:
          - run: resume notify
        """)
    result, journal, report = plane.run(path)
    assert result.rc == 9, result
    assert [s["outcome"] for s in journal["steps"]] == ["passed", "errored", "skipped", "passed"]
    assert "unknown stage 'notfy'" in journal["steps"][1]["message"]
    assert plane.state("notify") == "running"
    assert plane.api("GET", "/stages/notify")["parallelism"] != 3  # the step after the error never ran
    assert [c.tag for case in report.findall("./testsuite/testcase") for c in case
            if c.tag in ("error", "skipped")] == ["error", "skipped"]


def test_a_failed_rollback_is_never_reported_as_success(plane):
    path = plane.drill("badrollback.yaml", """\
        title: the rollback is wrong
        method:
          - run: status orders
        rollbacks:
          - run: resume notfy
        """)
    result, journal, _ = plane.run(path)
    assert result.rc == 9, result
    assert journal["status"] == "rollback_failed"
    assert "FAILED (a rollback did not pass)" in result.stderr


def start(plane: Plane, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([executable(), "drill", "run", str(path), "-o", "json"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=plane.cli.env(),
                            cwd=plane.root)


def until(what: str, probe, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_drill_still_runs_its_rollbacks(plane, sig):
    plane.api("POST", "/stages/notify/resume", json={})
    mark = plane.root / f"rollback-started-{sig.name}"
    path = plane.drill(f"interrupt-{sig.name}.yaml", f"""\
        title: interrupted mid-method
        method:
          - run: pause notify
          - sleep: 60
          - run: scale notify 4
        rollbacks:
          - name: resume notify, slowly
            shell: touch {mark}; sleep 1; $PIPELINECTL resume notify
        """)
    proc = start(plane, path)
    progress: list[str] = []
    reader = threading.Thread(target=lambda: progress.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        until("the pause step to end", lambda: any("pause notify" in line for line in progress))
        assert plane.state("notify") == "paused"
        time.sleep(0.3)  # inside the sleep step now
        proc.send_signal(sig)
        until("the rollback to start", mark.exists)
        proc.send_signal(sig)  # a second signal during the rollbacks is noted, not obeyed
        out = proc.stdout.read()
        proc.wait(60)
        reader.join(10)
        err = "".join(progress)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert plane.state("notify") == "running"
    journal = json.loads(out)
    validate_output(journal)
    assert journal["status"] == "interrupted" and journal["interrupted_by"] == sig.name
    assert journal["signals_during_rollbacks"] == [sig.name]
    assert [s["outcome"] for s in journal["steps"]] == ["passed", "interrupted", "skipped", "passed"]
    assert plane.api("GET", "/stages/notify")["parallelism"] != 4
    assert "the rollbacks run to the end first" in err


def test_a_prompting_verb_without_yes_never_hangs_and_changes_nothing(plane, monkeypatch):
    """Even past validation (which refuses it), a verb that would ask gets no terminal and no stdin: it refuses."""
    from pipelinectl.drill.loader import Drill, Step
    from pipelinectl.drill.runner import Runner

    for key, value in plane.cli.env().items():
        monkeypatch.setenv(key, value)
    before = plane.api("GET", "/dlq")["total"]
    assert before > 0
    step = Step(phase="method", index=0, name="purge without yes", type="run", spec="dlq purge --all", line=1,
                timeout=30)
    drill = Drill(path="inline", title="t", description="", variables={}, hypothesis_title="", probes=[],
                  method=[step], rollbacks=[])
    started = time.monotonic()
    journal = Runner(drill, context="demo").run()
    assert time.monotonic() - started < 20
    record = journal["steps"][0]
    assert journal["exit_code"] == 9 and record["outcome"] == "errored"
    assert "without --yes" in record["message"]
    assert plane.api("GET", "/dlq")["total"] >= before  # nothing was purged


def test_the_junit_report_is_written_only_where_asked_and_its_default_name_is_ignored_by_git(plane):
    """No --junit: nothing lands in the working directory. --junit PATH: exactly that file."""
    path = plane.drill("quiet.yaml", """\
        title: a status probe
        hypothesis:
          probes:
            - name: orders answers
              assert: {run: status orders, that: "name == orders"}
        method:
          - run: status orders
        """)
    work = plane.root / "cwd"
    work.mkdir()
    result = plane.cli.run("drill", "run", str(path), cwd=work)
    assert result.rc == 0, result
    assert list(work.iterdir()) == [], "no report unless --junit asks for one"
    result = plane.cli.run("drill", "run", str(path), "--junit", "reports/drill.xml", cwd=work)
    assert result.rc == 0, result
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*")) == ["reports", "reports/drill.xml"]
    for name in ("report.xml", "reports/drill.xml"):  # the README's and the docs' example names
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT)
        assert ignored.returncode == 0, f"{name} is in .gitignore"
