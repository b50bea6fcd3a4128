"""The watch engine in a real process: piped it prints one JSON line per change as it happens and
ends (exit 0) when its target is gone; on a terminal (a pty) it redraws a live view in place and
Ctrl-C ends it with exit 130 (interrupted). The target is a file of stages the test edits; gone = deleted.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
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


class Lines:
    """A thread reads the child's stdout line by line (select() on a buffered pipe would miss buffered lines)."""

    def __init__(self, stream) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.queue.put(line)

    def next(self, timeout: float = 10.0) -> str:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no line within the timeout") from None


def test_piped_jsonl_line_per_change_and_the_end_when_the_target_is_gone(tmp_path):
    target = tmp_path / "stages.json"
    script = tmp_path / "watcher.py"
    script.write_text(SCRIPT)
    write_stages(target, charge="running", ship="running")
    proc = subprocess.Popen([sys.executable, str(script), str(target), "jsonl"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
    lines = Lines(proc.stdout)
    try:
        first = [json.loads(lines.next()), json.loads(lines.next())]
        assert [(d["name"], d["state"]) for d in first] == [("charge", "running"), ("ship", "running")]
        time.sleep(0.5)  # several polls, no change: no line
        write_stages(target, charge="paused", ship="running")
        changed = json.loads(lines.next())
        assert (changed["kind"], changed["name"], changed["state"]) == ("Stage", "charge", "paused")
        target.unlink()
        assert proc.wait(10) == 0
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.1)
    assert lines.queue.empty()  # nothing else changed before the end
    assert "watch ended: the target no longer exists" in err


def test_tty_live_view_redraws_in_place_and_ctrl_c_exits_130(tmp_path):
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
    assert result.rc == 130, result
    text = result.stdout
    assert "running" in text and "draining" in text
    assert "Ctrl-C to stop" in text
    assert "\x1b[1A" in text or "\x1b[2K" in text, "the view was redrawn in place (cursor up / erase line)"
    assert text.index("running") < text.index("draining")
