"""Session: which pipeline a command acts on, and when a destructive verb may proceed."""

from __future__ import annotations

import io

import pytest

from pipelinectl.cli.options import GlobalOptions
from pipelinectl.cli.session import Session
from pipelinectl.config import Config, Context
from pipelinectl.errors import AbortedError, UsageError
from pipelinectl.model import Pipeline


class Plane:
    def __init__(self, names):
        self.names = names
        self.calls = 0

    def status(self, pipeline=None):
        self.calls += 1
        return [Pipeline(name=n) for n in self.names]


def session_with(ctx: Context, plane: Plane, tmp_path, **options) -> Session:
    session = Session(GlobalOptions(**options))
    session.__dict__["config"] = Config(path=tmp_path / "c.yaml", current_context=ctx.name, contexts={ctx.name: ctx})
    session.__dict__["plane"] = plane
    return session


def test_explicit_then_context_then_the_planes_only_pipeline(tmp_path):
    plane = Plane(["orders"])
    s = session_with(Context(name="c", url="http://x", pipeline="payments"), plane, tmp_path)
    assert s.pipeline("explicit") == "explicit"
    assert s.pipeline() == "payments" and plane.calls == 0
    s = session_with(Context(name="c", url="http://x"), plane, tmp_path)
    assert s.pipeline() == "orders" and plane.calls == 1


def test_several_pipelines_need_a_choice(tmp_path):
    s = session_with(Context(name="c", url="http://x"), Plane(["a", "b"]), tmp_path)
    with pytest.raises(UsageError, match="several pipelines") as info:
        s.pipeline()
    assert "pipelines: a, b" in info.value.one_line()


def test_context_naming_several_pipelines_needs_p(tmp_path):
    s = session_with(Context(name="n", driver="nats", url="nats://x", pipeline="ORDERS, PAYMENTS"), Plane([]), tmp_path)
    with pytest.raises(UsageError, match="names several pipelines"):
        s.pipeline()
    assert s.pipeline("ORDERS") == "ORDERS"


def test_engine_namespace_is_the_pipeline_without_a_round_trip(tmp_path):
    plane = Plane(["default", "other"])
    s = session_with(Context(name="t", driver="temporal", url="http://x", namespace="default"), plane, tmp_path)
    assert s.pipeline() == "default" and plane.calls == 0
    http = session_with(Context(name="h", url="http://x", namespace="ignored"), Plane(["orders"]), tmp_path)
    assert http.pipeline() == "orders"


def test_confirm_refuses_in_machine_output_and_off_a_tty(tmp_path, monkeypatch):
    ctx = Context(name="prod", url="http://x")
    s = session_with(ctx, Plane([]), tmp_path, output="json")
    with pytest.raises(UsageError, match="context 'prod' without --yes in -o json"):
        s.confirm("purge 3 items", yes=False)
    s.confirm("purge 3 items", yes=True)  # --yes always proceeds
    s = session_with(ctx, Plane([]), tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    with pytest.raises(UsageError, match="no terminal to ask on"):
        s.confirm("purge 3 items", yes=False)


def test_confirm_on_a_tty_names_the_context_and_takes_only_yes(tmp_path, monkeypatch, capsys):
    s = session_with(Context(name="prod", url="http://x"), Plane([]), tmp_path)
    monkeypatch.setattr(Session, "interactive", property(lambda self: True))
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    s.confirm("purge 3 items", yes=False)
    assert "About to purge 3 items on context 'prod'" in capsys.readouterr().err
    for answer, error in (("n\n", "not confirmed"), ("", "end of file")):
        monkeypatch.setattr("sys.stdin", io.StringIO(answer))
        with pytest.raises(AbortedError, match=error):
            s.confirm("purge 3 items", yes=False)


@pytest.mark.parametrize("value", ["Bearer vwr-S3cr3t\nX-Injected: 1", "k-S3cr3t-\x00", "k-S3cr3t-ä"])
def test_a_header_value_that_cannot_be_sent_is_refused_naming_the_header(tmp_path, value):
    ctx = Context(name="c", url="http://x", headers={"X-Api-Key": value})
    s = session_with(ctx, Plane(["orders"]), tmp_path)
    with pytest.raises(UsageError) as info:
        s.connection_for(ctx)
    text = info.value.one_line()
    assert "header 'X-Api-Key'" in text and "context 'c'" in text
    assert "S3cr3t" not in text


def test_ordinary_header_values_pass(tmp_path):
    ctx = Context(name="c", url="http://x", headers={"X-Team": "payments east", "Authorization": "Bearer abc.def"})
    assert session_with(ctx, Plane(["orders"]), tmp_path).connection_for(ctx).headers == ctx.headers
