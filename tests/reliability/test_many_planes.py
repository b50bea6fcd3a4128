"""`status --all-contexts`: contexts are queried concurrently, and one dead plane is only a row.

Six contexts reach one real server through proxies that each add 1 s; a
seventh points at a port nothing listens on. Queried one after another that
is over 6 s; concurrently it is about one plane's time.
"""

from __future__ import annotations

import time

import pytest

from tests.reliability.plane import start_quiet_plane, use_context
from tests.support.cli import CliEnv
from tests.support.faultproxy import FaultProxy, free_port

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

LATENCY = 1.0
PLANES = 6


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    server = start_quiet_plane(tmp_path_factory.mktemp("plane"))
    yield server
    server.stop()


def test_all_contexts_concurrent_and_a_dead_plane_is_one_row(tmp_path, plane):
    cli = CliEnv(tmp_path)
    port = int(plane.url.rsplit(":", 1)[1])
    proxies = [FaultProxy(port, latency=LATENCY).start() for _ in range(PLANES)]
    try:
        for i, proxy in enumerate(proxies):
            use_context(cli, f"plane-{i}", proxy.url, plane.tokens["viewer"])
        use_context(cli, "dead", f"http://127.0.0.1:{free_port()}", plane.tokens["viewer"], current=False)

        started = time.monotonic()
        single = cli.run("--context", "plane-0", "status", "-o", "json", "--timeout", "20")
        single_wall = time.monotonic() - started
        assert single.rc == 0, single

        started = time.monotonic()
        result = cli.run("status", "--all-contexts", "-o", "json", "--timeout", "5")
        wall = time.monotonic() - started

        rows = {row["context"]: row for row in result.json()["items"]}
        assert set(rows) == {f"plane-{i}" for i in range(PLANES)} | {"dead"}
        assert all(rows[f"plane-{i}"]["ok"] for i in range(PLANES)), rows
        assert all(rows[f"plane-{i}"]["pipelines"] for i in range(PLANES))
        dead = rows["dead"]
        assert dead["ok"] is False and dead["error"]["exit_code"] == 6, dead
        assert "refused" in dead["error"]["message"] or "cannot reach" in dead["error"]["message"]
        assert result.rc == 6, result  # the run says one context failed...
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "dead" in errors[0], result.stderr  # ...and names it, in one line
        for proxy in proxies:
            assert len(proxy.log) >= 1, "every plane was asked"
        # concurrent: far from the 6 s a sequential loop would need, near one plane's time
        assert wall < single_wall + 0.5 * LATENCY * PLANES, (wall, single_wall)
        starts = sorted(proxy.log[0].at for proxy in proxies)
        # sequential asking would spread the first requests over >= 5 s
        assert starts[-1] - starts[0] < 0.5 * LATENCY * PLANES, "the planes were asked concurrently"
    finally:
        for proxy in proxies:
            proxy.stop()
