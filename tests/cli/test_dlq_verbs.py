"""dlq list / inspect / redrive / purge against the in-memory plane: selection, planning, refusals, streaming."""

from __future__ import annotations

import pytest

from pipelinectl.errors import ExitCode
from tests.cli.verbs_fake import Harness, fake_fixture  # noqa: F401  (the fake fixture)


def test_list_filters_and_limits(fake: Harness) -> None:
    result = fake("dlq", "list", "--stage", "parse", "--error-kind", "validation", "-o", "json")
    assert result.rc == 0, result
    doc = result.json()
    assert doc["kind"] == "DLQItemList"
    assert [i["id"] for i in doc["items"]] == ["dlq-1", "dlq-3", "dlq-5"]
    since = fake("dlq", "list", "--since", "2026-05-01T12:05:00Z", "--until", "2026-05-01T12:07:00Z", "-o", "name")
    assert since.stdout.split() == ["dlqitem/dlq-5", "dlqitem/dlq-6"]


def test_jsonl_streams_page_by_page_and_limit_stops_early(fake: Harness) -> None:
    result = fake("dlq", "list", "-o", "jsonl", "--limit", "3")
    assert result.rc == 0, result
    lines = result.stdout.splitlines()
    assert [line.count('"kind":"DLQItem"') for line in lines] == [1, 1, 1]
    # the page size follows the limit, so no more than 3 items were ever fetched
    assert fake.plane.pages == [3]


def test_jsonl_without_limit_reads_every_page(fake: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[int] = []
    original = fake.plane.dlq_list

    def small_pages(selection, *, page_size=500):  # type: ignore[no-untyped-def]
        fetched.append(page_size)
        return original(selection, page_size=2)

    monkeypatch.setattr(fake.plane, "dlq_list", small_pages)
    result = fake("dlq", "list", "-o", "jsonl")
    assert result.rc == 0, result
    assert len(result.stdout.splitlines()) == 7
    assert fake.plane.pages == [2, 2, 2, 1]


def test_inspect_and_show_alias(fake: Harness) -> None:
    table = fake("dlq", "inspect", "dlq-2")
    assert table.rc == 0, table
    assert "Error kind: transient" in table.stdout and '"n": 2' in table.stdout
    as_json = fake("dlq", "show", "dlq-2", "-o", "json")
    assert as_json.json()["id"] == "dlq-2" and as_json.json()["payload"] == {"n": 2}
    missing = fake("dlq", "inspect", "dlq-99")
    assert missing.rc == ExitCode.NOT_FOUND and "dlq-99" in missing.stderr


def test_single_id_redrive_runs_without_asking_and_is_audited(fake: Harness) -> None:
    result = fake("dlq", "redrive", "dlq-3")
    assert result.rc == 0, result
    assert "1 item redriven" in result.stdout and "context 'test'" in result.stdout
    assert "dlq-3" not in fake.plane.dlq
    (entry,) = fake.audit()
    assert entry["verb"] == "dlq redrive" and entry["result"] == "succeeded=1 failed=0"


def test_bulk_redrive_off_a_terminal_needs_yes(fake: Harness) -> None:
    before = fake.snapshot()
    refused = fake("dlq", "redrive", "--stage", "parse")
    assert refused.rc == ExitCode.USAGE, refused
    assert "refusing to redrive 5 DLQ items of pipeline 'orders' (stage=parse) on context 'test' without --yes" \
        in refused.stderr
    assert fake.snapshot() == before and fake.audit() == []
    done = fake("dlq", "redrive", "--stage", "parse", "--yes", "-o", "json")
    assert done.rc == 0, done
    assert sorted(done.json()["succeeded"]) == ["dlq-1", "dlq-2", "dlq-3", "dlq-4", "dlq-5"]
    assert sorted(fake.plane.dlq) == ["dlq-6", "dlq-7"]
    assert len(fake.audit()) == 1


def test_two_ids_are_bulk_and_machine_output_never_prompts(fake: Harness) -> None:
    result = fake("dlq", "redrive", "dlq-1", "dlq-2", "-o", "json", tty=True)
    assert result.rc == ExitCode.USAGE, result
    assert "without --yes in -o json mode" in result.stderr
    assert "dlq-1" in fake.plane.dlq


def test_purge_always_asks_even_for_one_id(fake: Harness) -> None:
    result = fake("dlq", "purge", "dlq-6")
    assert result.rc == ExitCode.USAGE and "refusing to purge 1 DLQ item" in result.stderr
    assert "dlq-6" in fake.plane.dlq
    ok = fake("dlq", "purge", "dlq-6", "--yes")
    assert ok.rc == 0 and "1 item purged" in ok.stdout
    assert "dlq-6" not in fake.plane.dlq


def test_bulk_acts_only_on_the_confirmed_items(fake: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """An item arriving between the plan and the action is left alone: the action runs on the planned IDs."""
    from pipelinectl.model import DLQItem

    original = fake.plane.dlq_redrive

    def redrive(selection, *, dry_run=False):  # type: ignore[no-untyped-def]
        result = original(selection, dry_run=dry_run)
        if dry_run:  # a new dead letter lands right after the plan
            fake.plane.dlq["dlq-8"] = DLQItem(id="dlq-8", pipeline="orders", stage="enrich",
                                              error_kind="transient", message="late")
        return result

    monkeypatch.setattr(fake.plane, "dlq_redrive", redrive)
    result = fake("dlq", "redrive", "--stage", "enrich", "--yes")
    assert result.rc == 0, result
    assert "2 items redriven" in result.stdout
    assert "dlq-8" in fake.plane.dlq


def test_bulk_redrive_is_sent_in_chunks(fake: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelinectl.cli import dlq
    from pipelinectl.model import DLQItem

    for n in range(8, 30):
        fake.plane.dlq[f"dlq-{n}"] = DLQItem(id=f"dlq-{n}", pipeline="orders", stage="enrich",
                                              error_kind="transient", message="x")
    monkeypatch.setattr(dlq, "CHUNK", 10)
    result = fake("dlq", "redrive", "--all", "--yes", "-o", "json")
    assert result.rc == 0, result
    assert len(result.json()["succeeded"]) == 29
    assert [len(ids) for verb, ids in fake.plane.calls] == [10, 10, 9]
    assert len(fake.audit()) == 1


def test_partial_failure_renders_the_result_then_exits_4(fake: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    original = fake.plane.dlq_redrive

    def half(selection, *, dry_run=False):  # type: ignore[no-untyped-def]
        result = original(selection, dry_run=dry_run)
        if not dry_run and "dlq-7" in result.succeeded:
            result.succeeded.remove("dlq-7")
            result.failed["dlq-7"] = "stage 'enrich' no longer exists"
        return result

    monkeypatch.setattr(fake.plane, "dlq_redrive", half)
    result = fake("dlq", "redrive", "dlq-6", "dlq-7", "--yes", "-o", "json")
    assert result.rc == ExitCode.CONFLICT, result
    assert result.json()["failed"] == {"dlq-7": "stage 'enrich' no longer exists"}
    assert "dlq-7: stage 'enrich' no longer exists" in result.stderr
    assert "1 item could not be redriven" in result.stderr


def test_dry_run_lists_what_would_go_and_changes_nothing(fake: Harness) -> None:
    before = fake.snapshot()
    result = fake("dlq", "purge", "--error-kind", "transient", "--dry-run")
    assert result.rc == 0, result
    assert "dry run: purge would act on 3 items of pipeline 'orders' (error-kind=transient)" in result.stdout
    assert [line.strip() for line in result.stdout.splitlines()[1:]] == ["dlq-2", "dlq-4", "dlq-6"]
    as_json = fake("dlq", "redrive", "--all", "--dry-run", "-o", "json")
    plan = as_json.json()
    assert plan["kind"] == "Plan" and len(plan["target"]["items"]) == 7 and plan["target"]["selection"] == "all items"
    assert plan["outcome"]["result"]["dry_run"] is True and len(plan["outcome"]["result"]["matched"]) == 7
    assert "dry run" in as_json.stderr
    assert fake.snapshot() == before and fake.audit() == []


def test_a_selection_matching_nothing_does_nothing(fake: Harness) -> None:
    result = fake("dlq", "purge", "--error-kind", "fatal", "--yes")
    assert result.rc == 0, result
    assert "no DLQ items match (error-kind=fatal); nothing to purge" in result.stderr
    assert fake.plane.calls == [] and fake.audit() == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("dlq", "redrive"), ExitCode.USAGE, "nothing selected: dlq redrive needs item IDs, --all, or a filter"),
        (("dlq", "purge", "--yes"), ExitCode.USAGE, "nothing selected: dlq purge needs"),
        (("dlq", "redrive", "dlq-1", "--all"), ExitCode.USAGE, "give item IDs, or --all / filters, not both"),
        (("dlq", "purge", "dlq-1", "--stage", "parse", "--yes"), ExitCode.USAGE, "not both"),
        (("dlq", "redrive", "dlq-1", "dlq-99", "dlq-98", "--yes"), ExitCode.NOT_FOUND,
         "DLQ items not found in pipeline 'orders': dlq-99, dlq-98"),
        (("dlq", "purge", "--stage", "nope", "--yes"), ExitCode.NOT_FOUND, "unknown stage 'nope'"),
        (("dlq", "purge", "--error-kind", "oops", "--yes"), ExitCode.USAGE, "invalid value for --error-kind"),
        (("dlq", "redrive", "--since", "soon", "--yes"), ExitCode.USAGE, "--since: 'soon' is not a time"),
        (("dlq", "redrive", "--since", "2026-05-02", "--until", "2026-05-01", "--yes"), ExitCode.USAGE,
         "--until (2026-05-01T00:00:00Z) must be after --since"),
        (("dlq", "list", "--limit", "0"), ExitCode.USAGE, "Invalid value for '--limit'"),
        (("dlq", "list", "--stage", "nope"), ExitCode.NOT_FOUND, "known stages: parse, enrich"),
    ],
)
def test_refused_selections_change_nothing(fake: Harness, args: tuple[str, ...], code: int, message: str) -> None:
    before = fake.snapshot()
    result = fake(*args)
    assert result.rc == code, result
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fake.snapshot() == before
    assert fake.audit() == []


def test_help_shows_examples(fake: Harness) -> None:
    for sub in ("list", "inspect", "redrive", "purge"):
        result = fake("dlq", sub, "--help")
        assert result.rc == 0, result
        lines = [line.strip() for line in result.stdout.splitlines()]
        assert "Examples:" in lines
        assert any(line.startswith(f"pipelinectl dlq {sub} ") for line in lines), result.stdout


def test_watch_prints_new_items_only_and_ctrl_c_ends_it_cleanly(fake: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelinectl import watch
    from pipelinectl.model import DLQItem

    looks = []

    def sleep(seconds: float) -> None:
        looks.append(seconds)
        if len(looks) == 1:  # a new dead letter arrives during the first pause
            fake.plane.dlq["dlq-8"] = DLQItem(id="dlq-8", pipeline="orders", stage="parse",
                                              error_kind="fatal", message="late arrival")
        elif len(looks) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(watch.time, "sleep", sleep)
    result = fake("dlq", "list", "--stage", "parse", "--watch", "--interval", "0.5", "-o", "jsonl")
    assert result.rc == 130, result  # Ctrl-C: interrupted, as the exit-code table says
    ids = [line.split('"id":"')[1].split('"')[0] for line in result.stdout.splitlines()]
    assert ids == ["dlq-1", "dlq-2", "dlq-3", "dlq-4", "dlq-5", "dlq-8"]
    assert looks == [0.5, 0.5, 0.5]


def test_ctrl_c_between_chunks_reports_and_audits_the_partial_result(fake: Harness,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelinectl.cli import dlq

    monkeypatch.setattr(dlq, "CHUNK", 3)
    original = fake.plane.dlq_purge
    sent: list[int] = []

    def purge(selection, *, dry_run=False):  # type: ignore[no-untyped-def]
        if not dry_run:
            sent.append(len(selection.ids))
            if len(sent) == 2:
                raise KeyboardInterrupt
        return original(selection, dry_run=dry_run)

    monkeypatch.setattr(fake.plane, "dlq_purge", purge)
    result = fake("dlq", "purge", "--all", "--yes")
    assert result.rc == ExitCode.INTERRUPTED, result
    assert "3 items purged" in result.stdout
    assert "interrupted: 4 items not purged; they stay in the DLQ" in result.stderr
    assert sorted(fake.plane.dlq) == ["dlq-4", "dlq-5", "dlq-6", "dlq-7"]
    (entry,) = fake.audit()
    assert entry["result"] == "succeeded=3 failed=0 interrupted"


def test_name_output_lists_the_affected_items(fake: Harness) -> None:
    dry = fake("dlq", "redrive", "--stage", "enrich", "--dry-run", "-o", "name")
    assert dry.stdout.split() == ["dlqitem/dlq-6", "dlqitem/dlq-7"]
    done = fake("dlq", "purge", "dlq-6", "--yes", "-o", "name")
    assert done.stdout.split() == ["dlqitem/dlq-6"]
    none = fake("dlq", "purge", "--error-kind", "fatal", "--yes", "-o", "name")
    assert none.rc == 0 and none.stdout == ""


def test_items_arriving_after_the_plan_are_reported_not_touched(fake: Harness,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelinectl.model import DLQItem

    original = fake.plane.dlq_purge

    def purge(selection, *, dry_run=False):  # type: ignore[no-untyped-def]
        result = original(selection, dry_run=dry_run)
        if dry_run:
            fake.plane.dlq["dlq-9"] = DLQItem(id="dlq-9", pipeline="orders", stage="enrich", error_kind="transient",
                                              message="late")
        return result

    monkeypatch.setattr(fake.plane, "dlq_purge", purge)
    result = fake("dlq", "purge", "--error-kind", "transient", "--yes")
    assert result.rc == 0, result
    assert "3 items purged" in result.stdout
    assert "1 more item matches now (not in the confirmed plan); run the command again to purge them" in result.stderr
    assert "dlq-9" in fake.plane.dlq


def test_a_table_stops_at_its_default_limit_and_says_how_to_see_more(fake: Harness,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelinectl.cli import dlq

    monkeypatch.setattr(dlq, "TABLE_DEFAULT_LIMIT", 4)
    table = fake("dlq", "list")
    assert table.rc == 0, table
    assert len(table.stdout.splitlines()) == 1 + 4
    assert "showing the first 4 items; use --limit N, or -o jsonl for all of them" in table.stderr
    everything = fake("dlq", "list", "-o", "jsonl")
    assert len(everything.stdout.splitlines()) == 7 and everything.stderr == ""


def test_wide_output_of_a_bulk_action_lists_the_ids(fake: Harness) -> None:
    result = fake("dlq", "redrive", "--stage", "enrich", "--yes", "-o", "wide")
    assert result.rc == 0, result
    assert [line.strip() for line in result.stdout.splitlines()[1:]] == ["dlq-6", "dlq-7"]
