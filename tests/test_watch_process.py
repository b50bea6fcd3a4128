"""The watch engine in a real process: piped it prints one JSON line per change as it happens and
ends (exit 0) when its target is gone; on a terminal (a pty) it redraws a live view in place and
Ctrl-C ends it with exit 0. The target is a file of stages the test edits; gone = deleted.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.support.cli import run_pty

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """\
import json, sys
from pipelinectl.model import Stage
from pipelinectl.watch import watch

def fetch():
    try:
        with open(sys.argv[1]) as f:
            return [Stage.from_dict(d) for d in json.load(f)]
    except FileNotFoundError:
        return None

sys.exit(watch(fetch, output=sys.argv[2], interval=0.1))
"""


def write_stages(path: Path, **states: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"pipeline": "orders", "name": n, "state": s} for n, s in states.items()]))
    os.replace(tmp, path)  # atomic: the watcher never reads half a file


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": ""}


def read_line(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no line within the timeout"
    return proc.stdout.readline()


def test_piped_jsonl_line_per_change_and_the_end_when_the_target_is_gone(tmp_path):
    target = tmp_path / "stages.json"
    script = tmp_path / "watcher.py"
    script.write_text(SCRIPT)
    write_stages(target, charge="running", ship="running")
    proc = subprocess.Popen([sys.executable, str(script), str(target), "jsonl"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
    try:
        first = [json.loads(read_line(proc)), json.loads(read_line(proc))]
        assert [(d["name"], d["state"]) for d in first] == [("charge", "running"), ("ship", "running")]
        time.sleep(0.5)  # several polls, no change: no line
        write_stages(target, charge="paused", ship="running")
        changed = json.loads(read_line(proc))
        assert (changed["kind"], changed["name"], changed["state"]) == ("Stage", "charge", "paused")
        target.unlink()
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert out == ""  # nothing else changed before the end
    assert "watch ended: the target no longer exists" in err


def test_tty_live_view_redraws_in_place_and_ctrl_c_exits_0(tmp_path):
    target = tmp_path / "stages.json"
    script = tmp_path / "watcher.py"
    script.write_text(SCRIPT)
    write_stages(target, charge="running")
    flip = tmp_path / "flip.py"
    # change the target once the first view is on screen, from a helper the pty run starts alongside
    flip.write_text(f"import time, json, os\ntime.sleep(1.0)\n"
                    f"open({str(target)!r} + '.tmp', 'w').write(json.dumps([{{'pipeline': 'orders', "
                    f"'name': 'charge', 'state': 'draining'}}]))\n"
                    f"os.replace({str(target)!r} + '.tmp', {str(target)!r})\n")
    helper = subprocess.Popen([sys.executable, str(flip)])
    try:
        result = run_pty([sys.executable, str(script), str(target), "table"], env=env(), timeout=30,
                         interrupt_after="draining", cwd=ROOT)
    finally:
        helper.wait(10)
    assert result.rc == 0, result
    text = result.stdout
    assert "running" in text and "draining" in text
    assert "Ctrl-C to stop" in text
    assert "\x1b[1A" in text or "\x1b[2K" in text, "the view was redrawn in place (cursor up / erase line)"
    assert text.index("running") < text.index("draining")
