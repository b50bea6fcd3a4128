"""The dashboard's parts without a browser: graph layout, sparklines, the guard, cursor pages,
bulk plans, the vendored files, and `pipelinectl ui` as a command (help, a missing extra, bad input).

The browser tests (test_dashboard.py, test_engines.py) are the proof that it works end to end; these
pin the edges that are slow or awkward to reach from a page.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipelinectl.model import AuditEntry, AuditFilter, DLQFilter, DLQItem, Pipeline, Stage
from tests.support.cli import CliEnv

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "pipelinectl" / "ui" / "static"


def _pipeline(n: int, driver: str = "http", **details) -> Pipeline:
    return Pipeline(name="p", driver=driver, details=details,
                    stages=[Stage(pipeline="p", name=f"s{i}", queue_depth=i * 10, queue_capacity=50)
                            for i in range(n)])


# -- graph ----------------------------------------------------------------------------------------------
def test_a_chain_runs_from_the_input_through_every_stage_in_order() -> None:
    from pipelinectl.ui.graph import layout

    g = layout(_pipeline(5))
    assert g.shape == "chain"
    assert [n.stage for n in g.nodes] == [None, "s0", "s1", "s2", "s3", "s4"]
    assert [n.x for n in g.nodes] == sorted(n.x for n in g.nodes) and len({n.y for n in g.nodes}) == 1
    assert [e.label for e in g.edges] == ["0/50", "10/50", "20/50", "30/50", "40/50"]
    assert [e.level for e in g.edges] == ["ok", "ok", "ok", "ok", "busy"]  # 40 of 50 stands out
    assert g.width >= g.nodes[-1].x + g.nodes[-1].w


def test_a_long_chain_snakes_onto_the_next_row() -> None:
    from pipelinectl.ui.graph import PER_ROW, layout

    g = layout(_pipeline(PER_ROW + 2))
    second_row = [n for n in g.nodes if n.y > g.nodes[0].y]
    assert [n.stage for n in second_row] == [f"s{PER_ROW - 1}", f"s{PER_ROW}", f"s{PER_ROW + 1}"]
    assert second_row[0].x > second_row[1].x > second_row[2].x  # right to left
    down = g.edges[PER_ROW - 1]  # from the end of row one straight down
    assert down.path.startswith("M") and down.path.split()[0][1:].split(",")[0] == down.path.split()[1][1:].split(",")[0]


def test_engines_fan_out_from_their_input_unless_the_driver_says_otherwise() -> None:
    from pipelinectl.ui.graph import layout

    g = layout(_pipeline(3, driver="nats"))
    assert g.shape == "fan-out"
    source = g.nodes[0]
    assert source.state == "input" and all(n.x > source.x for n in g.nodes[1:])
    assert len(g.edges) == 3 and all(e.path.startswith(f"M{source.x + source.w},") for e in g.edges)
    assert layout(_pipeline(3, driver="nats", graph="chain")).shape == "chain"
    assert layout(_pipeline(3, driver="http", graph="fan-out")).shape == "fan-out"


def test_nodes_take_the_stage_state_and_failing_from_the_error_rate() -> None:
    from pipelinectl.ui.graph import layout

    p = _pipeline(5)
    for stage, state in zip(p.stages, ("paused", "draining", "disabled", "hibernating", "running"), strict=True):
        stage.state = state
    p.stages[4].error_rate = 0.2
    assert [n.state for n in layout(p).nodes[1:]] == ["paused", "draining", "disabled", "other", "failing"]


def test_sparklines_scale_into_their_box() -> None:
    from pipelinectl.ui.graph import SPARK_H, SPARK_W, sparkline

    assert sparkline([]) == "" and sparkline([3.0]) == ""
    points = [tuple(map(float, p.split(","))) for p in sparkline([0.0, 5.0, 10.0]).split()]
    assert [x for x, _ in points] == [0.0, SPARK_W / 2, SPARK_W]
    assert all(0 <= y <= SPARK_H for _, y in points) and points[0][1] > points[2][1]  # higher value, higher up
    assert len(sparkline([2.0, 2.0, 2.0]).split()) == 3  # a flat line is still drawn


# -- the guard -------------------------------------------------------------------------------------------
@pytest.fixture
def client():
    import warnings

    with warnings.catch_warnings():  # starlette would rather have httpx2; httpx is what this project uses
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from pipelinectl.cli.options import GlobalOptions
    from pipelinectl.ui.app import Settings, create_app
    from pipelinectl.ui.planes import Planes

    settings = Settings(token="the-access-token", csrf="the-csrf-token", port=8799, allow_writes=True)
    app = create_app(Planes([], GlobalOptions()), settings)
    with TestClient(app, base_url="http://127.0.0.1:8799", follow_redirects=False) as test_client:
        yield test_client


def test_the_guard_wants_the_token_once_then_the_cookie(client) -> None:
    assert client.get("/").status_code == 403
    assert client.get("/?token=nope").status_code == 403
    entered = client.get("/dlq?c=x&token=the-access-token&p=y")
    assert entered.status_code == 303 and entered.headers["location"] == "/dlq?c=x&p=y"
    assert client.get("/").status_code == 200  # the cookie now
    assert client.get("/", headers={"Host": "attacker.example"}).status_code == 403
    for header in ("content-security-policy", "x-frame-options", "referrer-policy", "x-content-type-options"):
        assert header in client.get("/").headers


def test_writes_need_the_csrf_token_and_a_same_origin(client) -> None:
    headers = {"Authorization": "Bearer the-access-token"}
    form = {"c": "none", "p": "orders", "action": "pause", "stage": "a"}
    assert client.post("/act/plan", data=form, headers=headers).status_code == 403
    assert client.post("/act/plan", data=form, headers={**headers, "X-CSRF-Token": "wrong"}).status_code == 403
    cross = client.post("/act/plan", data=form,
                        headers={**headers, "X-CSRF-Token": "the-csrf-token", "Origin": "http://evil.example"})
    assert cross.status_code == 403
    ok = client.post("/act/cancel", data=form, headers={**headers, "X-CSRF-Token": "the-csrf-token",
                                                        "Origin": "http://127.0.0.1:8799"})
    assert ok.status_code == 200 and "nothing was changed" in ok.text
    assert client.post("/act/cancel", content=b"{}", headers={**headers, "X-CSRF-Token": "the-csrf-token",
                                                               "Content-Type": "application/json"}).status_code == 400
    assert client.get("/pipeline?c=none&p=orders", headers=headers).status_code == 404


# -- cursor pages ----------------------------------------------------------------------------------------
class _Plane:
    """Just enough of ui.planes.Plane for Cursors: a driver whose dlq_list yields `count` items."""

    def __init__(self, count: int) -> None:
        import threading

        self.name = "fake"
        self.lock = threading.RLock()
        self.count = count
        self.listings = 0
        self.read = 0
        self.selections: list = []

    def call(self, fn):
        plane = self

        class Driver:
            def dlq_list(self, selection, page_size=500):
                plane.listings += 1
                for n in range(plane.count):
                    plane.read += 1
                    yield DLQItem(id=f"dlq-{n}", pipeline="p", stage="s", error_kind="validation", message="m")

            def audit_list(self, selection, page_size=500):
                from datetime import UTC, datetime

                plane.listings += 1
                plane.selections.append(selection)
                for n in range(plane.count):
                    plane.read += 1
                    yield AuditEntry(id=f"audit-{n}", time=datetime.now(UTC), actor="a", verb="pause", target="s")

        class Session:
            plane = Driver()

        return fn(Session())


def test_cursor_pages_read_one_more_page_each_and_go_back_from_memory() -> None:
    from pipelinectl.ui.cursors import PAGE_SIZE, Cursors

    plane, cursors = _Plane(PAGE_SIZE * 2 + 7), Cursors()
    selection = DLQFilter(pipeline="p")
    first = cursors.page(plane, selection, None, 0)
    assert [i.id for i in first.items] == [f"dlq-{n}" for n in range(PAGE_SIZE)] and first.has_next
    assert plane.read == PAGE_SIZE + 1  # one page and one item to know there is more
    second = cursors.page(plane, selection, first.browse, 1)
    third = cursors.page(plane, selection, first.browse, 2)
    assert second.browse == third.browse == first.browse and not third.has_next
    assert len(third.items) == 7 and plane.listings == 1 and plane.read == PAGE_SIZE * 2 + 7
    again = cursors.page(plane, selection, first.browse, 0)  # previous pages come from what was read
    assert again.items == first.items and plane.read == PAGE_SIZE * 2 + 7
    other = cursors.page(plane, DLQFilter(pipeline="p", stage="s"), first.browse, 1)  # not that browse's filter
    assert other.browse != first.browse and other.number == 0 and other.restarted
    fresh = cursors.page(plane, DLQFilter(pipeline="p", stage="s"), None, 0)
    assert fresh.browse not in (first.browse, other.browse) and not fresh.restarted
    gone = cursors.page(plane, selection, "no-such-browse", 2)
    assert gone.restarted and gone.number == 0 and gone.items == first.items
    cursors.close()


def test_the_audit_view_pages_the_trail_as_the_dlq_browser_pages() -> None:
    from pipelinectl.ui.cursors import PAGE_SIZE, Cursors

    plane, cursors = _Plane(PAGE_SIZE + 3), Cursors()
    mine = AuditFilter(actor="ops", newest_first=True)
    first = cursors.page(plane, mine, None, 0)
    assert [e.id for e in first.items] == [f"audit-{n}" for n in range(PAGE_SIZE)] and first.has_next
    second = cursors.page(plane, mine, first.browse, 1)
    assert len(second.items) == 3 and not second.has_next and plane.listings == 1
    assert plane.selections == [mine]  # the filter reaches the driver as given, newest first included
    other = cursors.page(plane, AuditFilter(actor="ops", verb="limit", newest_first=True), first.browse, 1)
    assert other.restarted and other.browse != first.browse and plane.listings == 2
    dlq = cursors.page(plane, DLQFilter(pipeline="p"), None, 0)
    assert dlq.items[0].id == "dlq-0"
    cursors.close()


def test_a_bulk_plan_is_used_once_by_its_own_context() -> None:
    from pipelinectl.errors import UsageError
    from pipelinectl.ui.actions import Plans

    plans = Plans()
    plan_id = plans.keep("a", object())  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        plans.take("b", plan_id)
    other = plans.keep("a", "plan")  # type: ignore[arg-type]
    assert plans.take("a", other) == "plan"
    with pytest.raises(UsageError, match="expired or was used"):
        plans.take("a", other)


# -- vendored files --------------------------------------------------------------------------------------
def test_vendored_files_are_the_pinned_versions_with_their_licences() -> None:
    readme = (STATIC / "README.md").read_text()
    for name in ("htmx.min.js",):
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()
        assert f"{name} `{digest}`" in readme, name
        assert (STATIC / name.replace(".min.js", ".LICENSE.txt")).read_text().startswith(("Zero-Clause BSD", "BSD Zero"))
    version = re.search(r"\| `htmx.min.js` \|[^|]+\| ([\d.]+) \|", readme).group(1)
    assert f'version:"{version}"' in (STATIC / "htmx.min.js").read_text()
    templates = " ".join(p.read_text() for p in (ROOT / "pipelinectl" / "ui" / "templates").glob("*.html"))
    assert "http://" not in templates and "https://" not in templates  # nothing from the network


def test_the_package_data_ships_templates_and_static_files() -> None:
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = data["tool"]["setuptools"]["package-data"]["pipelinectl"]
    assert "ui/templates/*.html" in shipped and "ui/static/*" in shipped
    assert set(data["project"]["optional-dependencies"]["ui"]) >= {"starlette>=0.40", "jinja2>=3.1", "uvicorn>=0.30"}


# -- the command --------------------------------------------------------------------------------------------
def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("PIPELINECTL_CONTEXT", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                          cwd=ROOT)


def test_ui_help_imports_no_web_stack(tmp_path: Path) -> None:
    done = _python(
        "import sys, io, contextlib\n"
        "from pipelinectl.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    rc = main(['ui', '--help'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'jinja2', 'uvicorn', 'httpx')"
        " or m.startswith('pipelinectl.ui'))\n"
        "print(rc, heavy, '--allow-writes' in out.getvalue() and 'Examples' in out.getvalue())\n", tmp_path)
    assert done.stdout.strip() == "0 [] True", done.stdout + done.stderr


@pytest.mark.parametrize("missing", ["jinja2", "starlette", "uvicorn"])
def test_without_the_ui_extra_one_line_says_what_to_install(tmp_path: Path, missing: str) -> None:
    done = _python(f"import sys\nsys.modules[{missing!r}] = None\nfrom pipelinectl.__main__ import main\n"
                   "sys.exit(main(['ui']))\n", tmp_path)
    assert done.returncode == 2, done
    assert done.stderr == f"error: the dashboard needs the ui extra ({missing} is missing) " \
                          "(pip install 'pipelinectl[ui]')\n"
    assert done.stdout == ""


def test_bad_input_is_refused_before_anything_is_served(tmp_path: Path) -> None:
    cli = CliEnv(tmp_path)
    nothing = cli.run("ui")
    assert nothing.rc == 2 and "no context selected" in nothing.stderr, nothing
    cli.set_context("a", "http://127.0.0.1:9")
    unknown = cli.run("--context", "nope", "ui")
    assert unknown.rc == 3 and "context 'nope' not found" in unknown.stderr, unknown
    both = cli.run("--context", "a", "ui", "--all-contexts")
    assert both.rc == 2 and "exclude each other" in both.stderr, both
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = cli.run("ui", "--port", str(taken.getsockname()[1]))
    assert busy.rc == 2 and "cannot listen on 127.0.0.1:" in busy.stderr and busy.stdout == "", busy
    for result in (nothing, unknown, both, busy):
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_an_unreachable_context_is_a_card_saying_so_not_an_error_page(tmp_path: Path) -> None:
    import time
    import warnings

    import yaml

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from pipelinectl.cli.options import GlobalOptions
    from pipelinectl.ui.app import Settings, create_app
    from pipelinectl.ui.planes import Planes

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"contexts": {"down": {"url": f"http://127.0.0.1:{port}"}}}))
    settings = Settings(token="t0ken-for-the-test", csrf="c", port=8798)
    app = create_app(Planes(["down"], GlobalOptions(config=str(config), timeout=1.0)), settings)
    with TestClient(app, base_url="http://127.0.0.1:8798",
                    headers={"Authorization": "Bearer t0ken-for-the-test"}) as client:
        started = time.monotonic()
        card = client.get("/card?c=down")
        assert card.status_code == 200 and time.monotonic() - started < 10
        assert 'class="problem"' in card.text and f"127.0.0.1:{port}" in card.text
        page = client.get("/pipeline?c=down&p=orders")
        assert page.status_code == 200 and 'class="problem"' in page.text
