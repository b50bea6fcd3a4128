"""Protected contexts, the installed executable against a real plane: off a terminal and on a pseudo-terminal.

On a context marked `protected: true` every mutating verb names the context and its target first.
Off a terminal --yes alone is refused (exit 2) and --confirm-context NAME is required; a wrong name
is refused. On a terminal the operator types the context's name: anything else declines (exit 10).
Dry runs are never blocked, and the same plane through a plain context behaves as it always did.
"""

from __future__ import annotations

import pytest

from tests.cli.verbs_e2e import Plane, plane_fixture  # noqa: F401  (the plane fixture)

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

PROD = ("--context", "prod")


@pytest.fixture(name="prod", scope="module")
def prod_fixture(plane: Plane) -> Plane:
    """The plane once more as context 'prod', protected (the current context stays the plain 'admin')."""
    plane.cli.set_context("prod", plane.server.url, token=plane.server.tokens["admin"], pipeline="orders",
                          use=False, extra_args=("--protected",))
    return plane


def dead_letter(plane: Plane) -> str:
    return plane.wait_for("a dead letter", lambda: plane.dlq_ids())[0]


def test_set_context_protected_is_shown_and_can_be_lifted(prod: Plane) -> None:
    listed = prod.run("config", "get-contexts", "-o", "json").json()["items"]
    assert {c["name"]: c["protected"] for c in listed} == {"admin": False, "operator": False, "prod": True,
                                                          "viewer": False}
    table = prod.run("config", "get-contexts").stdout.splitlines()
    assert "PROTECTED" in table[0]
    assert [line.split()[:2] for line in table if line.split()[0] == "prod"] == [["prod", "yes"]]
    assert "protected: true" in prod.run("config", "view").stdout
    assert prod.run("config", "set-context", "prod", "--no-protected").rc == 0
    assert "protected" not in prod.run("config", "view").stdout
    assert prod.run("config", "set-context", "prod", "--protected").rc == 0


def test_off_a_terminal_yes_alone_is_refused_and_says_why(prod: Plane) -> None:
    target = dead_letter(prod)
    refused = prod.run("dlq", "purge", target, "--yes", *PROD)
    assert refused.rc == 2, refused
    assert f"About to purge 1 DLQ item of pipeline 'orders' ({target}) on protected context 'prod'" in refused.stderr
    assert "--yes alone is not enough" in refused.stderr and "--confirm-context prod" in refused.stderr
    assert target in prod.dlq_ids()


def test_runbook_verbs_confirm_on_a_protected_context_too(prod: Plane) -> None:
    before = prod.stage("notify")
    audit = len(prod.cli.audit_lines())
    refused = prod.run("pause", "notify", *PROD)
    assert refused.rc == 2, refused
    assert "About to pause orders/notify on protected context 'prod'" in refused.stderr
    assert "no terminal to ask on" in refused.stderr
    scale = prod.run("scale", "notify", "--parallelism", "2", *PROD)
    assert scale.rc == 2 and "scale orders/notify (parallelism=2)" in scale.stderr, scale
    assert prod.stage("notify")["version"] == before["version"]
    assert prod.cli.audit_lines()[audit:] == []
    plain = prod.run("pause", "notify")  # the same plane through the plain context: as always, no question
    assert plain.rc == 0, plain
    assert prod.run("resume", "notify").rc == 0


def test_confirm_context_with_the_wrong_name_is_refused_and_the_right_one_acts(prod: Plane) -> None:
    target = dead_letter(prod)
    wrong = prod.run("dlq", "purge", target, *PROD, "--confirm-context", "staging")
    assert wrong.rc == 2, wrong
    assert "--confirm-context 'staging' does not name the context in use, 'prod'" in wrong.stderr
    assert target in prod.dlq_ids()
    right = prod.run("dlq", "purge", target, *PROD, "--confirm-context", "prod")
    assert right.rc == 0, right
    assert target not in prod.dlq_ids()
    line = prod.cli.audit_lines()[-1]
    assert (line["verb"], line["context"]) == ("dlq purge", "prod")
    paused = prod.run("--confirm-context", "prod", "pause", "notify", *PROD, "-o", "json")
    assert paused.rc == 0 and paused.json()["state"] == "paused", paused
    assert prod.run("resume", "notify", *PROD, "--confirm-context", "prod").rc == 0
    elsewhere = prod.run("pause", "notify", "--confirm-context", "prod")  # names prod, acts on admin
    assert elsewhere.rc == 2 and "does not name the context in use, 'admin'" in elsewhere.stderr, elsewhere
    assert prod.stage("notify")["state"] == "running"


def test_dry_runs_are_never_blocked(prod: Plane) -> None:
    target = dead_letter(prod)
    for argv in (("pause", "notify", "--dry-run"), ("dlq", "purge", target, "--dry-run"),
                 ("dlq", "purge", target, "--dry-run", "-o", "yaml"),
                 ("scale", "notify", "--parallelism", "2", "--dry-run", "-o", "json")):
        result = prod.run(*argv, *PROD)
        assert result.rc == 0, result
        assert "protected" not in result.stderr
    assert target in prod.dlq_ids()


def test_applying_a_plan_on_a_protected_context_confirms_too(prod: Plane) -> None:
    current = prod.stage("ship")
    made = prod.run("scale", "ship", "--parallelism", str(current["parallelism"] % 4 + 1), "--dry-run", "-o", "yaml",
                    *PROD)
    assert made.rc == 0, made
    refused = prod.run("apply", "-f", "-", "--yes", *PROD, input=made.stdout)
    assert refused.rc == 2 and "on protected context 'prod'" in refused.stderr, refused
    assert prod.stage("ship")["version"] == current["version"]
    applied = prod.run("apply", "-f", "-", *PROD, "--confirm-context", "prod", input=made.stdout)
    assert applied.rc == 0, applied
    assert prod.stage("ship")["parallelism"] == current["parallelism"] % 4 + 1


def test_on_a_terminal_the_wrong_name_declines_with_exit_10(prod: Plane) -> None:
    before = prod.stage("notify")
    result = prod.cli.run_pty("pause", "notify", *PROD, answers=[("Type the context name (prod) to confirm:", "prd")])
    assert result.rc == 10, result
    assert "About to pause orders/notify on protected context 'prod'" in result.stdout
    assert "'prd' is not the context's name" in result.stdout
    assert prod.stage("notify")["version"] == before["version"]
    yes = prod.cli.run_pty("dlq", "purge", dead_letter(prod), "--yes", *PROD,
                           answers=[("Type the context name (prod) to confirm:", "y")])
    assert yes.rc == 10, yes  # --yes does not answer for a protected context, nor does "y"


def test_on_a_terminal_the_right_name_proceeds(prod: Plane) -> None:
    target = dead_letter(prod)
    result = prod.cli.run_pty("dlq", "purge", target, *PROD, answers=[("Type the context name (prod) to confirm:",
                                                                        "prod")])
    assert result.rc == 0, result
    assert "Proceed? [y/N]" not in result.stdout, "one question: the name"
    assert target not in prod.dlq_ids()
    paused = prod.cli.run_pty("pause", "notify", *PROD, answers=[("to confirm:", "prod")])
    assert paused.rc == 0 and "stage orders/notify: paused" in paused.stdout, paused
    assert prod.stage("notify")["state"] == "paused"
    assert prod.cli.run_pty("resume", "notify", *PROD, answers=[("to confirm:", "prod")]).rc == 0
