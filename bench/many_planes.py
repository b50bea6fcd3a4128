"""Many-planes benchmark: `status --all-contexts` over 50 contexts, beside the slowest single plane.

    .venv/bin/python bench/many_planes.py [--contexts 50] [--servers 2] [--slowest 0.8] [--check]

Fifty server processes are too heavy for a small machine, so a few real
servers stand behind one fault proxy per context (tests/support/faultproxy.py),
each proxy adding its own latency to every request: 20-290 ms, one context at
`--slowest` seconds. One more context points at a port nothing listens on.

Printed, as whole processes: the wall time of `status --all-contexts -o json`;
the wall time of `status` against the slowest plane alone and against the
unreachable one alone; the sum of every context's own time (what a sequential
loop would pay). The all-contexts wall time must stay close to the slowest
single plane, not the sum (`--check`: within 2x of the slowest single run),
and the unreachable context must be reported in its own row while every other
row is ok.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLOSE_WITHIN = 2.0


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, int, str, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    return time.perf_counter() - started, done.returncode, done.stdout, done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", type=int, default=50, help="reachable contexts (default 50)")
    parser.add_argument("--servers", type=int, default=2, help="real servers behind the proxies (default 2)")
    parser.add_argument("--slowest", type=float, default=0.8, help="latency of the slowest plane, seconds")
    parser.add_argument("--timeout", type=float, default=10.0, help="--timeout given to pipelinectl")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement; the median is printed")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()

    from tests.reliability.plane import start_quiet_plane
    from tests.support.faultproxy import FaultProxy, free_port

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        servers = [start_quiet_plane(tmp / f"plane-{i}") for i in range(args.servers)]
        proxies: list[FaultProxy] = []
        try:
            latencies = [args.slowest if i == 0 else 0.02 + (i % 10) * 0.03 for i in range(args.contexts)]
            contexts: dict[str, dict[str, str]] = {}
            env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINECTL_")}
            for i, latency in enumerate(latencies):
                server = servers[i % len(servers)]
                proxy = FaultProxy(int(server.url.rsplit(":", 1)[1]), latency=latency).start()
                proxies.append(proxy)
                name = f"plane-{i:02d}"
                contexts[name] = {"url": proxy.url, "token-env": f"TOKEN_{i % len(servers)}"}
                env[f"TOKEN_{i % len(servers)}"] = server.tokens["viewer"]
            contexts["unreachable"] = {"url": f"http://127.0.0.1:{free_port()}", "token-env": "TOKEN_0"}
            home = tmp / "home"
            config = home / ".config" / "pipelinectl" / "config.yaml"
            config.parent.mkdir(parents=True)
            import yaml

            config.write_text(yaml.safe_dump({"current-context": "plane-00", "contexts": contexts}))
            config.chmod(0o600)
            env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".state"),
                       XDG_CACHE_HOME=str(home / ".cache"))
            cli = str(Path(sys.executable).parent / "pipelinectl")
            timeout = ["--timeout", f"{args.timeout:g}"]

            def median_of(argv: list[str]) -> tuple[float, int, str, str]:
                runs = sorted((_run(argv, env) for _ in range(args.runs)), key=lambda r: r[0])
                return runs[len(runs) // 2]

            all_wall, all_rc, all_out, all_err = median_of([cli, "status", "--all-contexts", "-o", "json", *timeout])
            slow_wall, slow_rc, _, slow_err = median_of([cli, "--context", "plane-00", "status", "-o", "json",
                                                         *timeout])
            down_wall, down_rc, _, down_err = median_of([cli, "--context", "unreachable", "status", "-o", "json",
                                                         *timeout])
            fast_wall, _, _, _ = median_of([cli, "--context", "plane-01", "status", "-o", "json", *timeout])
        finally:
            for proxy in proxies:
                proxy.stop()
            for server in servers:
                server.stop()

    try:
        rows = json.loads(all_out)["items"]
    except (ValueError, KeyError, TypeError):
        print(f"status --all-contexts gave no JSON (exit {all_rc}): {all_err.strip()[-500:]}")
        return 1
    ok_rows = [r for r in rows if r["ok"]]
    bad_rows = [r for r in rows if not r["ok"]]
    per_context = sum(r.get("elapsed_ms", 0) for r in rows) / 1000
    sequential = sum(latencies)  # what a sequential loop pays in the proxies alone
    slowest_single = max(slow_wall, down_wall)
    print(f"status --all-contexts over {len(rows)} contexts ({args.contexts} reachable via {args.servers} real "
          f"servers behind latency proxies, 1 unreachable); median of {args.runs} runs, whole processes")
    print(f"  all contexts, wall                      {all_wall:7.2f} s  (exit {all_rc})")
    print(f"  slowest plane alone ({args.slowest:g} s latency)      {slow_wall:7.2f} s  (exit {slow_rc})")
    print(f"  unreachable context alone               {down_wall:7.2f} s  (exit {down_rc})")
    print(f"  a fast plane alone                      {fast_wall:7.2f} s")
    print(f"  sum of per-context times in the run     {per_context:7.2f} s")
    print(f"  sum of injected latencies (sequential)  {sequential:7.2f} s")
    print(f"  all-contexts / slowest single           {all_wall / slowest_single:7.2f} x")
    print(f"  rows ok: {len(ok_rows)}, failed: {len(bad_rows)} "
          + ", ".join(f"{r['context']}: {r['error']['message'][:120]}" for r in bad_rows))
    good = (all_wall <= CLOSE_WITHIN * slowest_single and len(ok_rows) == args.contexts
            and [r["context"] for r in bad_rows] == ["unreachable"])
    print(f"close to the slowest single plane (within {CLOSE_WITHIN:g}x), unreachable reported in its row only: "
          f"{'OK' if good else 'NO'}")
    if down_rc == 0 or slow_rc != 0:
        print(f"  note: single runs exited {slow_rc} (slowest) and {down_rc} (unreachable): {slow_err.strip()[-200:]}"
              f" {down_err.strip()[-200:]}")
    return 1 if args.check and not good else 0


if __name__ == "__main__":
    sys.exit(main())
