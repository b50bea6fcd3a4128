"""pause / resume / drain / scale against the in-memory plane: the logic and every refusal path."""

from __future__ import annotations

import pytest

from pipelinectl.errors import ExitCode
from tests.cli.verbs_fake import PLANES, Harness, NoSagaPlane, fake_fixture  # noqa: F401  (the fake fixture)


def test_pause_by_name_and_selector_is_idempotent_and_audited_once_each(fake: Harness) -> None:
    first = fake("pause", "parse")
    assert first.rc == 0, first
    assert first.stdout.strip() == "stage orders/parse: paused (was running)"
    again = fake("pause", "stage=parse")
    assert again.rc == 0, again
    assert "paused (no change)" in again.stdout
    assert fake.plane.stages["parse"].state == "paused"
    audit = fake.audit()
    assert [a["verb"] for a in audit] == ["pause", "pause"]
    assert audit[0]["target"] == "orders/parse"
    assert audit[0]["context"] == "test"
    assert audit[0]["request_id"] == "req-1"


def test_resume_and_drain_change_state_and_print_json(fake: Harness) -> None:
    fake.plane.stages["parse"].state = "paused"
    out = fake("resume", "parse", "-o", "json")
    assert out.rc == 0, out
    assert out.json()["kind"] == "Stage" and out.json()["state"] == "running"
    drained = fake("drain", "enrich", "-o", "yaml")
    assert drained.rc == 0, drained
    assert "state: draining" in drained.stdout
    assert fake.plane.stages["enrich"].state == "draining"
    assert drained.stderr == ""  # machine output: no human notes
    told = fake("resume", "enrich"), fake("drain", "enrich")
    assert "when done: pipelinectl resume enrich" in told[1].stderr, told


def test_pause_until_sends_the_parsed_future_time(fake: Harness) -> None:
    result = fake("pause", "parse", "--until", "30m")
    assert result.rc == 0, result
    until = fake.plane.stages["parse"].paused_until
    assert until is not None
    assert "paused until" in result.stdout
    assert fake.audit()[0]["arguments"]["until"].endswith("Z")


def test_scale_and_resize_alias_send_the_version_they_read(fake: Harness) -> None:
    result = fake("scale", "enrich", "--parallelism", "8")
    assert result.rc == 0, result
    assert "parallelism 8 (was 4)" in result.stdout
    assert fake.plane.stages["enrich"].parallelism == 8
    alias = fake("resize", "stage=enrich", "--parallelism", "2", "-o", "json")
    assert alias.rc == 0, alias
    assert alias.json()["parallelism"] == 2
    assert [c[0] for c in fake.plane.calls] == ["scale", "scale"]


def test_scale_conflict_when_the_stage_changed_under_us(fake: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    real_get = fake.plane.get_stage

    def stale_read(pipeline: str, stage: str):  # another operator scaled right after our read
        seen = real_get(pipeline, stage)
        fake.plane.stages[stage].version += 1
        return seen

    monkeypatch.setattr(fake.plane, "get_stage", stale_read)
    result = fake("scale", "enrich", "--parallelism", "8")
    assert result.rc == ExitCode.CONFLICT, result
    assert fake.plane.stages["enrich"].parallelism == 4
    assert fake.audit()[0]["result"].startswith("error: FAILED_PRECONDITION")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("pause", "nope"), ExitCode.NOT_FOUND, "unknown stage 'nope' in pipeline 'orders' (known stages: parse, enrich)"),
        (("resume", "stage="), ExitCode.USAGE, "needs a value"),
        (("drain", "stag=parse"), ExitCode.USAGE, "unknown key 'stag'"),
        (("scale", "parse", "--parallelism", "9"), ExitCode.USAGE, "outside [1, 8]"),
        (("scale", "parse", "--parallelism", "0"), ExitCode.USAGE, "outside [1, 8]"),
        (("scale", "parse", "--parallelism", "-2"), ExitCode.USAGE, "must not be negative"),
        (("scale", "parse", "--parallelism", "many"), ExitCode.USAGE, "Invalid value for '--parallelism'"),
        (("scale", "parse"), ExitCode.USAGE, "Missing option '--parallelism'"),
        (("pause", "parse", "--until", "yesterday-ish"), ExitCode.USAGE, "--until: 'yesterday-ish' is not a time"),
        (("pause", "parse", "--until", "-2h"), ExitCode.USAGE, "is in the past"),
        (("pause", "parse", "-p", "payments"), ExitCode.NOT_FOUND, "pipeline 'payments' not found"),
    ],
)
def test_refused_input_is_one_line_with_its_exit_code_and_changes_nothing(
        fake: Harness, args: tuple[str, ...], code: int, message: str) -> None:
    before = fake.snapshot()
    result = fake(*args)
    assert result.rc == code, result
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert fake.snapshot() == before
    assert fake.audit() == []


@pytest.mark.parametrize("verb", ["pause", "resume", "drain"])
def test_dry_run_says_so_and_changes_nothing(fake: Harness, verb: str) -> None:
    before = fake.snapshot()
    result = fake(verb, "parse", "--dry-run")
    assert result.rc == 0, result
    assert result.stdout.startswith("dry run: "), result.stdout
    assert "nothing was changed" in result.stdout
    assert fake.snapshot() == before
    assert fake.audit() == []


def test_dry_run_in_json_keeps_stdout_machine_clean(fake: Harness) -> None:
    result = fake("scale", "parse", "--parallelism", "5", "--dry-run", "-o", "json")
    assert result.rc == 0, result
    assert result.json()["kind"] == "Plan" and result.json()["outcome"]["result"]["parallelism"] == 5
    assert "dry run" in result.stderr
    assert fake.plane.stages["parse"].parallelism == 2


def test_unsupported_verb_is_exit_7_with_the_drivers_line(fake: Harness) -> None:
    class NoDrain(NoSagaPlane):
        def drain(self, pipeline, stage, **kw):  # type: ignore[no-untyped-def]
            return self._unsupported("drain")

    PLANES["current"] = NoDrain()
    result = fake("drain", "parse")
    assert result.rc == ExitCode.UNSUPPORTED, result
    assert result.stderr.strip() == "error: 'drain' is not supported by the nosaga driver"


def test_stage_verbs_never_prompt_even_off_a_terminal(fake: Harness) -> None:
    for args in (("pause", "parse"), ("drain", "parse"), ("resume", "parse"), ("scale", "parse", "--parallelism", "3")):
        result = fake(*args, "-o", "json")
        assert result.rc == 0, result
    assert len(fake.audit()) == 4


def test_help_of_each_stage_verb_shows_its_examples_on_their_own_lines(fake: Harness) -> None:
    for verb in ("pause", "resume", "drain", "scale", "resize"):
        result = fake(verb, "--help")
        assert result.rc == 0, result
        lines = [line.strip() for line in result.stdout.splitlines()]
        assert "Examples:" in lines
        examples = [line for line in lines if line.startswith("pipelinectl ")]
        assert len(examples) == 2, result.stdout
