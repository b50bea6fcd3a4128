#!/usr/bin/env python3
"""How long a Tab costs: whole-process time of `pipelinectl __complete`, against a bare interpreter.

    python bench/completion.py [-n RUNS]

Each case is a fresh process (what the shell pays at every Tab), timed from
spawn to exit. Cases run interleaved, round after round, so load on the machine
hits them alike; the median of each is compared with the median of
`python -c pass` on the same interpreter the `pipelinectl` script uses.

Bytecode: an installed package has its .pyc files; a checkout run with
PYTHONDONTWRITEBYTECODE=1 compiles every module at every start. By default the
bench gives every case (the baseline too) a bytecode cache in a temporary
PYTHONPYCACHEPREFIX, filled by a warm-up round, as after `pip install`;
--no-bytecode measures with the environment as it is. Only
requests that need no control plane are measured: plane lookups are bounded by
PIPELINECTL_COMPLETE_TIMEOUT (1 s) and cached, and are not what this measures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def executable() -> Path:
    candidate = Path(sys.executable).parent / "pipelinectl"
    if not candidate.exists():
        sys.exit("pipelinectl is not installed next to this interpreter (pip install -e .)")
    return candidate


def cases(exe: Path) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "python -c pass (baseline)": [python, "-c", "pass"],
        "Tab: commands": [str(exe), "__complete", "bash", "pipelinectl "],
        "Tab: subcommand option": [str(exe), "__complete", "bash", "pipelinectl dlq list --er"],
        "Tab: -o values": [str(exe), "__complete", "bash", "pipelinectl status -o "],
        "Tab: context names": [str(exe), "__complete", "bash", "pipelinectl --context "],
        "pipelinectl --version": [str(exe), "--version"],
        "pipelinectl --help": [str(exe), "--help"],
        "pipelinectl completion bash (typer)": [str(exe), "completion", "bash"],
    }


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=30, help="rounds (default 30)")
    parser.add_argument("--no-bytecode", action="store_true", help="do not give the runs a bytecode cache")
    parser.add_argument("--check", type=float, metavar="RATIO",
                        help="exit 1 when a Tab that needs no control plane costs more than RATIO x python -c pass")
    args = parser.parse_args()
    exe = executable()
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINECTL_")}
        env.update(HOME=home, XDG_CONFIG_HOME=f"{home}/config", XDG_CACHE_HOME=f"{home}/cache",
                   XDG_STATE_HOME=f"{home}/state", PIPELINECTL_LOAD_PLUGINS="")
        if not args.no_bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = f"{home}/pycache"
        config = Path(home, "config", "pipelinectl", "config.yaml")
        config.parent.mkdir(parents=True)
        config.write_text("current-context: prod\ncontexts:\n  prod: {url: 'https://plane.prod:8765'}\n"
                          "  staging: {url: 'https://plane.staging:8765'}\n")
        config.chmod(0o600)
        table = cases(exe)
        samples: dict[str, list[float]] = {name: [] for name in table}
        for argv in table.values():  # warm the page cache and the completion cache once
            timed(argv, env)
        for _ in range(args.runs):
            for name, argv in table.items():
                samples[name].append(timed(argv, env))
    baseline = statistics.median(samples["python -c pass (baseline)"])
    mode = "no bytecode cache" if args.no_bytecode else "with a bytecode cache, as installed"
    print(f"{'case':<40}{'median ms':>11}{'p90 ms':>9}{'x python':>10}   ({args.runs} runs each, interleaved; {mode})")
    for name, values in samples.items():
        values.sort()
        median = statistics.median(values)
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        print(f"{name:<40}{median * 1000:>11.1f}{p90 * 1000:>9.1f}{median / baseline:>10.2f}")
    static = statistics.median(samples["Tab: commands"])
    print(f"\nA Tab that needs no control plane costs {static / baseline:.2f}x a bare `python -c pass`"
          f" ({(static - baseline) * 1000:+.1f} ms).")
    if args.check is not None:
        worst = max(statistics.median(samples[name]) for name in ("Tab: commands", "Tab: subcommand option",
                                                                   "Tab: -o values"))
        if worst / baseline > args.check:
            print(f"check failed: {worst / baseline:.2f}x > {args.check}x", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
