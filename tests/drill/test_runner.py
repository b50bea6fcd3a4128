"""The runner's rules, with shell steps and a stand-in pipelinectl (fake_pipelinectl.py): outcomes,
exit codes, rollbacks on every path, timeouts that kill the whole process group, stdin closed,
captures, and the JUnit report. The same rules against the real plane: test_drills_e2e.py.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pipelinectl.drill import junit
from pipelinectl.drill.loader import load
from pipelinectl.drill.runner import Runner

FAKE = str(Path(__file__).with_name("fake_pipelinectl.py"))


@pytest.fixture
def fake(tmp_path, monkeypatch):
    state = tmp_path / "stages.json"
    state.write_text(json.dumps({"ingest": "running", "charge": "running"}))
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_STATE", str(state))
    monkeypatch.setenv("FAKE_LOG", str(log))

    class Fake:
        def stages(self):
            return json.loads(state.read_text())

        def calls(self):
            return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return Fake()


def run(tmp_path: Path, text: str, **variables: str) -> dict:
    path = tmp_path / "drill.yaml"
    path.write_text(textwrap.dedent(text))
    drill = load(path, variables)
    return Runner(drill, context="test", pipelinectl=[sys.executable, FAKE]).run()


def outcomes(journal: dict) -> list[tuple[str, str]]:
    return [(s["phase"], s["outcome"]) for s in journal["steps"]]


HYPOTHESIS = """\
hypothesis:
  probes:
    - name: charge runs
      assert: {run: status, that: "stages[name=charge].state == running"}
"""


def test_a_passing_drill(tmp_path, fake):
    journal = run(tmp_path, "title: ok\n" + HYPOTHESIS + """\
method:
  - run: pause charge
  - run: resume charge
rollbacks:
  - run: resume charge
""")
    assert journal["status"] == "passed" and journal["exit_code"] == 0
    assert outcomes(journal) == [("hypothesis-before", "passed"), ("method", "passed"), ("method", "passed"),
                                 ("hypothesis-after", "passed"), ("rollback", "passed")]
    # verbs run with the drill's context and the JSON output the assertion needs
    assert fake.calls()[0] == ["--context", "test", "status", "-o", "json"]


def test_a_fault_that_breaks_the_hypothesis_exits_8_and_rolls_back(tmp_path, fake):
    journal = run(tmp_path, "title: broken\n" + HYPOTHESIS + """\
method:
  - name: fault
    shell: $PIPELINECTL pause charge
rollbacks:
  - run: resume charge
""")
    assert journal["exit_code"] == 8 and journal["status"] == "hypothesis_not_met"
    assert outcomes(journal)[-2:] == [("hypothesis-after", "failed"), ("rollback", "passed")]
    after = journal["steps"][2]
    assert after["assertions"] == [{"that": "stages[name=charge].state == running", "ok": False, "actual": "paused"}]
    assert fake.stages()["charge"] == "running"  # the rollback's effect


def test_a_step_error_skips_the_rest_exits_9_and_still_rolls_back(tmp_path, fake):
    journal = run(tmp_path, "title: error\n" + HYPOTHESIS + """\
method:
  - run: pause ingest
  - run: pause nope
  - run: pause charge
rollbacks:
  - run: resume ingest
""")
    assert journal["exit_code"] == 9 and journal["status"] == "failed"
    assert outcomes(journal) == [("hypothesis-before", "passed"), ("method", "passed"), ("method", "errored"),
                                 ("method", "skipped"), ("hypothesis-after", "skipped"), ("rollback", "passed")]
    assert journal["steps"][2]["message"] == "exit 3 (expected 0): error: unknown stage 'nope'"
    assert fake.stages() == {"ingest": "running", "charge": "running"}


def test_the_hypothesis_not_met_before_skips_the_method_but_not_the_rollbacks(tmp_path, fake):
    fake_state = fake.stages()
    fake_state["charge"] = "paused"
    Path(os.environ["FAKE_STATE"]).write_text(json.dumps(fake_state))
    journal = run(tmp_path, "title: t\n" + HYPOTHESIS + """\
method:
  - run: pause ingest
rollbacks:
  - run: resume charge
""")
    assert journal["exit_code"] == 8
    assert outcomes(journal) == [("hypothesis-before", "failed"), ("method", "skipped"),
                                 ("hypothesis-after", "skipped"), ("rollback", "passed")]
    assert fake.stages() == {"ingest": "running", "charge": "running"}


def test_a_failed_rollback_fails_the_drill_and_the_others_still_run(tmp_path, fake):
    journal = run(tmp_path, """\
title: t
method:
  - run: pause charge
rollbacks:
  - run: resume nope
  - run: resume charge
""")
    assert journal["exit_code"] == 9 and journal["status"] == "rollback_failed"
    assert outcomes(journal) == [("method", "passed"), ("rollback", "errored"), ("rollback", "passed")]
    assert fake.stages()["charge"] == "running"


def test_continue_on_failure_is_tolerated_and_said(tmp_path, fake):
    journal = run(tmp_path, """\
title: t
method:
  - shell: exit 4
    continue_on_failure: true
  - shell: echo after
""")
    assert journal["exit_code"] == 0
    first, second = journal["steps"]
    assert first["outcome"] == "errored" and first["tolerated"] is True
    assert first["message"] == "exit 4 (expected 0): no output"
    assert second["outcome"] == "passed" and second["message"] == "after"


def test_stdin_is_closed_so_nothing_waits_on_a_prompt(tmp_path, fake):
    started = time.monotonic()
    journal = run(tmp_path, """\
title: t
method:
  - shell: read answer
    expect_exit: 1
    timeout: 20
""")
    assert journal["exit_code"] == 0, journal["steps"]
    assert time.monotonic() - started < 10


def test_a_timeout_kills_the_whole_process_group(tmp_path, fake):
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    journal = run(tmp_path, f"""\
title: t
method:
  - shell: sleep 60 & echo $! > {pid_file}; wait
    timeout: 1
rollbacks:
  - shell: echo rolled back
""")
    assert time.monotonic() - started < 15
    assert journal["exit_code"] == 9
    assert outcomes(journal) == [("method", "timed_out"), ("rollback", "passed")]
    pid = int(pid_file.read_text())
    time.sleep(0.2)
    assert not alive(pid)  # the background child of the shell is gone too


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper (a container's init may never reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def test_capture_feeds_later_steps_and_yes_passes_yes(tmp_path, fake):
    journal = run(tmp_path, """\
title: t
method:
  - run: replay --from-offset 0 --to-offset 41
    yes: true
    capture: {job: id, total: total}
  - shell: echo "job=${job} next=${total+1} env=$DRILL_JOB"
""")
    assert journal["exit_code"] == 0, journal["steps"]
    assert journal["steps"][0]["captured"] == {"job": "rp-7", "total": "41"}
    assert journal["steps"][1]["message"] == "job=rp-7 next=42 env=rp-7"
    assert "--yes" in fake.calls()[0]
    assert journal["variables"]["job"] == "rp-7"


def test_an_assertion_within_a_time_polls_until_it_holds(tmp_path, fake):
    journal = run(tmp_path, """\
title: t
method:
  - shell: (sleep 1.5; $PIPELINECTL pause charge) > /dev/null 2>&1 &
  - assert:
      run: status
      that: "stages[name=charge].state == paused"
      within: 20s
      interval: 0.3
rollbacks:
  - run: resume charge
""")
    assert journal["exit_code"] == 0, journal["steps"]
    assert journal["steps"][1]["attempts"] >= 2


def test_junit_has_one_testcase_per_step_with_failures_errors_and_skips_marked(tmp_path, fake):
    journal = run(tmp_path, "title: junit\n" + HYPOTHESIS + """\
method:
  - shell: $PIPELINECTL pause charge
  - run: pause nope
  - sleep: 1
rollbacks:
  - run: resume charge
""")
    report = tmp_path / "out" / "report.xml"
    junit.write(journal, report)
    root = ET.parse(report).getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(journal["steps"]) == 6
    marks = [next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "ok")
             for case in cases]
    assert marks == ["ok", "ok", "error", "skipped", "skipped", "ok"]
    assert suite.get("tests") == "6" and suite.get("errors") == "1" and suite.get("skipped") == "2"
    assert cases[2].find("error").get("message").startswith("exit 3")
    assert cases[0].get("classname") == "drill.junit.hypothesis-before"
    assert {p.get("name"): p.get("value") for p in suite.find("properties")}["exit_code"] == "9"
