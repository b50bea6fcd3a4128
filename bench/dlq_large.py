"""Large-DLQ benchmark: `dlq list -o jsonl` streams page by page in flat memory.

    .venv/bin/python bench/dlq_large.py [--sizes 20000,200000] [--check]

For each size, seeds that many dead-letter items into a fresh plane (the
server's own SQLite store, before it starts; tests/reliability/plane.py),
starts the real server, then runs, as whole processes reading to the end:
  pipelinectl dlq list -o jsonl           the CLI (http driver, 500 items a page)
  a bare httpx paging loop                the same API, same page size, one JSON line per item
and prints items, seconds, items/s, peak RSS (the child's own ru_maxrss
from wait4) and the time to the first item (streaming: it does not grow with size). Peak RSS of the CLI must stay flat: the largest size within 20%
of the smallest (`--check` exits 1 otherwise, or if any item is missing).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PAGE_SIZE = 500
FLAT_WITHIN = 0.20

BARE_LOOP = r"""
import json, sys, httpx
url, token, page_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = sys.stdout
with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
    params = {"page_size": page_size}
    while True:
        page = client.get("/v1/pipelines/orders/dlq", params=params).json()
        for item in page["items"]:
            out.write(json.dumps(item) + "\n")
        token_ = page.get("next_page_token")
        if not token_:
            break
        params = {"page_size": page_size, "page_token": token_}
"""


# Peak RSS is read by a small wrapper process: a child forked straight from this (large) process
# would report this process's RSS as its own floor (Linux carries the forking mm's high-water mark
# into the child's ru_maxrss across exec), which would hide any growth.
RSS_WRAPPER = r"""
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _measure(argv: list[str], env: dict[str, str]) -> tuple[int, float, float, int, float]:
    """Run to the end counting stdout lines: (lines, seconds, peak RSS MiB, exit code, seconds to the first line)."""
    rss_file = tempfile.NamedTemporaryFile(suffix=".rss", delete=False)
    rss_file.close()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-S", "-c", RSS_WRAPPER, rss_file.name, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    lines = 0
    first = float("nan")
    assert proc.stdout is not None
    for chunk in iter(lambda: proc.stdout.read1(1 << 20), b""):
        if not lines and b"\n" in chunk:
            first = time.perf_counter() - started
        lines += chunk.count(b"\n")
    stderr = proc.stderr.read() if proc.stderr else b""
    proc.wait()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(f"{argv[0]} exited {proc.returncode}: {stderr.decode(errors='replace')[-400:]}\n")
    text = Path(rss_file.name).read_text()
    os.unlink(rss_file.name)
    return lines, seconds, (int(text) / 1024 if text else float("nan")), proc.returncode, first


def run_size(size: int, tmp: Path) -> dict[str, tuple[int, float, float, int, float]]:
    from tests.reliability.plane import start_quiet_plane

    seeded = time.perf_counter()
    plane = start_quiet_plane(tmp / f"plane-{size}", seed_dlq=size)
    seed_seconds = time.perf_counter() - seeded
    try:
        home = tmp / f"home-{size}"
        config = home / ".config" / "pipelinectl" / "config.yaml"
        config.parent.mkdir(parents=True)
        config.write_text(f"current-context: big\ncontexts:\n  big:\n    url: {plane.url}\n    pipeline: orders\n"
                          f"    token-env: BENCH_TOKEN\n")
        config.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINECTL_")}
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".state"),
                   XDG_CACHE_HOME=str(home / ".cache"), BENCH_TOKEN=plane.tokens["viewer"])
        cli = str(Path(sys.executable).parent / "pipelinectl")
        results = {
            "pipelinectl dlq list -o jsonl": _measure([cli, "dlq", "list", "-o", "jsonl", "--timeout", "600"], env),
            "bare httpx paging loop": _measure([sys.executable, "-c", BARE_LOOP, plane.url, plane.tokens["viewer"],
                                                str(PAGE_SIZE)], env),
        }
        print(f"  (seeded and started a plane with {size:,} extra items in {seed_seconds:.1f}s)", file=sys.stderr)
        return results
    finally:
        plane.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,200000", help="comma-separated DLQ sizes (default 20000,200000)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless flat within 20%% and complete")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    table: dict[int, dict[str, tuple[int, float, float, int, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            table[size] = run_size(size, Path(tmp))

    print(f"dlq list over a real plane, page size {PAGE_SIZE}, whole processes ({os.cpu_count()} CPUs)")
    print(f"{'seeded':>9}  {'command':32} {'items':>9} {'seconds':>8} {'items/s':>9} {'peak RSS MiB':>13} "
          f"{'first item s':>13}")
    ok = True
    for size, results in table.items():
        for name, (lines, seconds, rss, rc, first) in results.items():
            print(f"{size:9,}  {name:32} {lines:9,} {seconds:8.2f} {lines / seconds:9,.0f} {rss:13.1f} "
                  f"{first:13.2f}")
            ok = ok and rc == 0 and lines >= size  # the demo's own dead letters come on top
        cli_rate = results["pipelinectl dlq list -o jsonl"][0] / results["pipelinectl dlq list -o jsonl"][1]
        bare_rate = results["bare httpx paging loop"][0] / results["bare httpx paging loop"][1]
        print(f"{'':9}  CLI throughput = {cli_rate / bare_rate:.2f}x the bare loop")
    name = "pipelinectl dlq list -o jsonl"
    small, large = table[min(sizes)][name][2], table[max(sizes)][name][2]
    growth = large / small - 1
    flat = growth <= FLAT_WITHIN
    print(f"peak RSS of the CLI: {small:.1f} MiB at {min(sizes):,} -> {large:.1f} MiB at {max(sizes):,} items "
          f"({growth:+.1%}); flat within {FLAT_WITHIN:.0%}: {'OK' if flat else 'NO'}")
    return 1 if args.check and not (flat and ok) else 0


if __name__ == "__main__":
    sys.exit(main())
