"""bench/runtime.py keeps running (a smoke run with --quick) and prints the figures the README quotes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_prints_throughput_and_pause_latency():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "runtime.py"), "--quick"], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    for parallelism in (1, 4, 16):
        assert f"parallelism {parallelism:>2}:" in out.stdout
    assert "p50" in out.stdout and "p99" in out.stdout
