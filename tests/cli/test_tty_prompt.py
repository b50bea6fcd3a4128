"""The confirmation prompt on a real pseudo-terminal: the installed executable against a real server.

Yes acts (and audits), no and end-of-file leave the plane as it was and say why, machine output
never prompts, and long operations show a progress bar on the terminal.
"""

from __future__ import annotations

import pytest

from tests.cli.verbs_e2e import Plane, plane_fixture  # noqa: F401  (the plane fixture)

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

EOF = "\x04"  # Ctrl-D at the start of a line: the terminal's end of file


def dead_letters(plane: Plane, n: int) -> list[str]:
    return plane.wait_for(f"{n} dead letters", lambda: (ids := plane.dlq_ids()) and len(ids) >= n and ids)[:n]


def test_yes_at_the_prompt_purges_and_names_count_pipeline_and_context(plane: Plane) -> None:
    target = dead_letters(plane, 1)[0]
    result = plane.cli.run_pty("dlq", "purge", target, answers=[("Proceed? [y/N]", "y")])
    assert result.rc == 0, result
    assert f"About to purge 1 DLQ item of pipeline 'orders' ({target}) on context 'admin'." in result.stdout
    assert "1 item purged from pipeline 'orders'" in result.stdout
    assert target not in plane.dlq_ids()
    assert plane.cli.audit_lines()[-1]["verb"] == "dlq purge"


def test_no_at_the_prompt_changes_nothing_exit_10(plane: Plane) -> None:
    target = dead_letters(plane, 1)[0]
    audit = len(plane.cli.audit_lines())
    result = plane.cli.run_pty("dlq", "purge", target, answers=[("Proceed? [y/N]", "n")])
    assert result.rc == 10, result
    assert "error: not confirmed; nothing was changed" in result.stdout
    assert target in plane.dlq_ids()
    assert plane.cli.audit_lines()[audit:] == []


def test_enter_alone_is_no(plane: Plane) -> None:
    saga_id = plane.wait_for("a stuck saga", lambda: [s["id"] for s in plane.sagas("stuck")], timeout=60)[0]
    result = plane.cli.run_pty("saga", "force-fail", saga_id, "--reason", "drill",
                               answers=[("Proceed? [y/N]", "")])
    assert result.rc == 10, result
    assert f"About to force-fail saga '{saga_id}' (order, stuck at step charge) in pipeline 'orders' " \
           "on context 'admin'." in result.stdout
    assert plane.saga(saga_id)["status"] == "stuck"


def test_end_of_file_at_the_prompt_says_why_nothing_happened(plane: Plane) -> None:
    target = dead_letters(plane, 1)[0]
    result = plane.cli.run_pty("dlq", "purge", target, answers=[("Proceed? [y/N]", EOF)])
    assert result.rc == 10, result
    assert "no answer on standard input (end of file); nothing was changed" in result.stdout
    assert target in plane.dlq_ids()


def test_machine_output_on_a_terminal_refuses_instead_of_prompting(plane: Plane) -> None:
    target = dead_letters(plane, 1)[0]
    result = plane.cli.run_pty("dlq", "purge", target, "-o", "json")
    assert result.rc == 2, result
    assert "Proceed?" not in result.stdout
    assert "without --yes in -o json mode" in result.stdout
    assert target in plane.dlq_ids()


def test_replay_confirmed_on_the_terminal_with_a_progress_bar(plane: Plane) -> None:
    plane.wait_for("30 input items", lambda: plane.get("")["input_offset"] >= 30)
    result = plane.cli.run_pty("replay", "--from-offset", "0", "--to-offset", "30", "--stage", "notify", "--wait",
                               "--poll", "0.2", answers=[("Proceed? [y/N]", "yes")])
    assert result.rc == 0, result
    assert "About to replay offsets 0..30 of pipeline 'orders' into stage 'notify': 30 items (" in result.stdout
    job_id = result.stdout.split("replay job ", 1)[1].split()[0]
    assert f"replay {job_id}" in result.stdout  # the progress bar's label, drawn on the terminal
    assert f"replay job {job_id} completed" in result.stdout


def test_bulk_redrive_shows_a_progress_bar_on_the_terminal_only(plane: Plane) -> None:
    first, second = dead_letters(plane, 2)
    tty = plane.cli.run_pty("dlq", "redrive", first, second, answers=[("Proceed? [y/N]", "y")])
    assert tty.rc == 0, tty
    assert "redrive orders" in tty.stdout  # the progress bar's label
    assert "2 items redriven" in tty.stdout
    third, fourth = dead_letters(plane, 2)
    piped = plane.run("dlq", "redrive", third, fourth, "--yes")
    assert piped.rc == 0, piped
    assert piped.stderr == "" and piped.stdout.strip() == "2 items redriven from pipeline 'orders' (context 'admin')"


def test_stage_verbs_never_prompt_on_a_terminal(plane: Plane) -> None:
    result = plane.cli.run_pty("pause", "notify")
    assert result.rc == 0, result
    assert "Proceed?" not in result.stdout
    assert plane.stage("notify")["state"] == "paused"
    assert plane.cli.run_pty("resume", "notify").rc == 0
