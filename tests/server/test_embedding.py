"""The example in docs/embedding.md runs as written and is operable over the API."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import httpx

from tests.support.server import RunningServer, free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "embedding.md"


def example_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, "docs/embedding.md lost its example"
    return blocks[0]


def test_embedding_example_runs_and_is_operable(tmp_path):
    (tmp_path / "greetings.py").write_text(example_code())
    port = free_port()
    db = tmp_path / "greetings.db"
    launcher = (f"import runpy; ns = runpy.run_path({str(tmp_path / 'greetings.py')!r}); "
                f"ns['serve']([ns['pipeline']], host='127.0.0.1', port={port}, db={str(db)!r})")
    srv = RunningServer(url=f"http://127.0.0.1:{port}", db=db, log=tmp_path / "log.txt",
                        args=[sys.executable, "-c", launcher], env=dict(os.environ))
    srv.start()
    try:
        base = srv.url + "/v1/pipelines/greetings"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            p = httpx.get(base).json()
            greet = p["stages"][1]
            if greet["processed"] >= 5 and greet["details"]["retries"] >= 1 and p["dlq_size"] >= 1:
                break
            time.sleep(0.3)
        assert [s["name"] for s in p["stages"]] == ["parse", "greet"]
        assert p["stages"][1]["processed"] >= 5
        assert p["stages"][1]["details"]["retries"] >= 1  # the transient mail relay
        dlq = httpx.get(base + "/dlq").json()["items"]
        assert dlq and all(i["error_kind"] == "validation" and i["stage"] == "parse" for i in dlq)
        assert httpx.post(base + "/stages/greet/pause").json()["state"] == "paused"
        assert httpx.post(base + "/stages/parse/scale", json={"parallelism": 4}).json()["parallelism"] == 4
    finally:
        assert srv.stop() == 0, srv.output()[-2000:]
