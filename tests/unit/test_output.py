"""Renderers: the machine shapes, plain vs colour tables, and streaming."""

from __future__ import annotations

import io
import json

import yaml

from pipelinectl.model import DLQItem, Pipeline, ResourceList, Stage
from pipelinectl.output import Renderer


def render(fmt, obj, *, color=False, kind=None):
    out = io.StringIO()
    Renderer(fmt, color=color, stream=out).emit(obj, kind=kind)
    return out.getvalue()


STAGES = [Stage(pipeline="o", name="parse", state="paused"), Stage(pipeline="o", name="ship")]


def test_json_list_envelope_and_single_object():
    data = json.loads(render("json", STAGES))
    assert data["kind"] == "StageList" and [s["name"] for s in data["items"]] == ["parse", "ship"]
    one = json.loads(render("json", STAGES[0]))
    assert one["kind"] == "Stage" and one["state"] == "paused"


def test_empty_list_keeps_its_kind_when_told():
    assert json.loads(render("json", [], kind="DLQItem")) == {"kind": "DLQItemList", "items": []}


def test_resource_list_envelope_kind_is_kept():
    data = json.loads(render("json", ResourceList(kind="PipelineList", items=[Pipeline(name="o")])))
    assert data["kind"] == "PipelineList" and data["items"][0]["kind"] == "Pipeline"


def test_yaml_equals_json():
    assert yaml.safe_load(render("yaml", STAGES)) == json.loads(render("json", STAGES))


def test_jsonl_streams_item_by_item():
    out = io.StringIO()
    renderer = Renderer("jsonl", stream=out)
    seen_before_second: list[str] = []

    def items():
        yield DLQItem(id="a", pipeline="o", stage="s", error_kind="fatal", message="m")
        seen_before_second.append(out.getvalue())
        yield DLQItem(id="b", pipeline="o", stage="s", error_kind="fatal", message="m")

    renderer.emit(items(), kind="DLQItem")
    assert seen_before_second[0].count("\n") == 1, "the first line is written before the second item exists"
    assert [json.loads(line)["id"] for line in out.getvalue().splitlines()] == ["a", "b"]


def test_name_format():
    assert render("name", STAGES) == "stage/parse\nstage/ship\n"
    assert render("name", DLQItem(id="d1", pipeline="o", stage="s", error_kind="fatal", message="m")) == "dlqitem/d1\n"


def test_plain_table_has_no_escape_codes_and_colour_table_has():
    plain = render("table", STAGES)
    assert "\x1b[" not in plain and "paused" in plain and plain.splitlines()[0].split()[0] == "PIPELINE"
    coloured = render("table", STAGES, color=True)
    assert "\x1b[" in coloured and "paused" in coloured


def test_wide_adds_columns():
    assert "VERSION" not in render("table", STAGES)
    assert "VERSION" in render("wide", STAGES)


def test_empty_table_says_so():
    assert render("table", [], kind="DLQItem") == "No DLQItem found.\n"


def test_emit_mapping_formats():
    out = io.StringIO()
    Renderer("name", stream=out).emit_mapping({"kind": "Context", "name": "prod"})
    assert out.getvalue() == "context/prod\n"
    out = io.StringIO()
    Renderer("jsonl", stream=out).emit_mapping({"kind": "Context", "name": "prod"})
    assert json.loads(out.getvalue()) == {"kind": "Context", "name": "prod"}


def _sagas(n=3):
    from pipelinectl.model import Saga

    return [Saga(id=f"saga-order-{i:06d}", pipeline="o", definition="order-fulfilment", status="compensating",
                 current_step="reserve-inventory", last_error="payments gateway unreachable (connection reset) " * 2)
            for i in range(n)]


def test_a_narrow_table_drops_columns_by_rank_then_cuts_only_free_text():
    from pipelinectl.output import Grid

    grid = Grid.of(_sagas(), "Saga", "table")
    layout = grid.layout(80)
    shown = [grid.columns[i].header for i in layout.kept]
    assert shown == ["ID", "STATUS", "CURRENT STEP", "AGE", "LAST ERROR"], shown  # DEFINITION, COMPLETED went
    text = grid.plain(80)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert all(f"saga-order-{i:06d}" in text for i in range(3)) and "compensating" in text
    assert all(line.endswith("…") for line in text.splitlines()[1:]), "the error is cut, at its end"
    # at 200 columns nothing is dropped; piped (None) nothing is dropped and the error cut at its clip (40)
    assert len(Grid.of(_sagas(), "Saga", "table").layout(200).kept) == 7
    piped = Grid.of(_sagas(), "Saga", "table").plain(None).splitlines()
    assert piped[1].endswith("payments gateway unreachable (connectio…")


def test_ids_are_never_cut_even_when_nothing_is_left_to_drop():
    from pipelinectl.output import Grid

    grid = Grid.of(_sagas(), "Saga", "table")
    text = grid.plain(30)
    assert all(f"saga-order-{i:06d}" in text for i in range(3)) and "compensating" in text
    assert grid.layout(30).total > 30, "longer than the terminal (it wraps the line) rather than a cut ID"


def test_wide_keeps_free_text_whole_wrapping_it_when_that_fits():
    from pipelinectl.model import DLQItem
    from pipelinectl.output import Grid

    message = "carrier refused shipment: service region temporarily closed for weather"
    items = [DLQItem(id="dlq-1", pipeline="o", stage="ship", error_kind="persistent", message=message)]
    wrapped = Grid.of(items, "DLQItem", "wide").plain(120)
    assert "…" not in wrapped and set(message.split()) <= set(wrapped.split())
    assert all(len(line.rstrip()) <= 120 for line in wrapped.splitlines())
    whole = Grid.of(items, "DLQItem", "wide").plain(None)
    assert message in whole, "piped wide: whole, on one line"
    live = Grid.of(items, "DLQItem", "wide", live=True)
    assert all(len(line.rstrip()) <= 80 for line in live.plain(80).splitlines()), "a live view fits the screen"


def test_colour_tables_lay_out_the_same_and_never_let_rich_squeeze_an_id():
    import re

    out = io.StringIO()
    Renderer("table", color=True, stream=out, width=60).emit(_sagas())
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    assert all(f"saga-order-{i:06d}" in text for i in range(3)), text
    assert all(len(line.rstrip()) <= 60 for line in text.splitlines()), text
