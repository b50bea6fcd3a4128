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
