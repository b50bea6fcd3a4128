"""Dashboard benchmark: first complete render of the pipeline page, and the CPU `pipelinectl ui` spends on live pages.

    .venv/bin/python bench/ui.py [--runs 15] [--window 30] [--pages 10]

Starts a reference server running the demo pipeline (its own data dir, a free port, auth
off), an isolated home whose context "demo" points at it, and `pipelinectl ui` (the installed
executable), then drives Debian's /usr/bin/chromium with Playwright (no browser download).

1. First complete render: a fresh page loads /pipeline until the graph, the live metrics and the
   recent-errors fragment are all in the DOM (median and p90 of --runs, after one warm-up).
   Peers in the same run: the raw JSON request the page is built from (`GET /v1/pipelines/orders`
   on the plane, httpx, keep-alive), the dashboard's server-side HTML of the page (httpx), and
   `pipelinectl status -o json` as a whole process.
2. CPU of `pipelinectl ui` (utime+stime from /proc, as a share of one core) over --window seconds
   with 0, 1 and --pages open live pages (each updated about once a second over SSE).
   Peer in the same run: --pages `pipelinectl status --watch -o jsonl --interval 1` processes,
   the terminal way to keep as many live views open, their CPU summed over the same window.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.cli import CliEnv, executable  # noqa: E402
from tests.support.server import start_server  # noqa: E402
from tests.ui.support import CHROMIUM, UiProcess, launch_browser  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def cpu_share(pids: list[int], window: float) -> float:
    """Summed CPU of `pids` over `window` seconds, as a share of one core."""
    before = sum(cpu_seconds(p) for p in pids)
    started = time.perf_counter()
    time.sleep(window)
    return (sum(cpu_seconds(p) for p in pids) - before) / (time.perf_counter() - started)


def median_p90(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def timed(fn, runs: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--window", type=float, default=30.0, help="seconds of each CPU measurement")
    parser.add_argument("--pages", type=int, default=10)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.stderr.write(f"bench/ui.py needs {CHROMIUM} (Debian package chromium)\n")
        return 2
    import httpx
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    server = start_server(tmp / "plane", auth=False)
    cli = CliEnv(tmp / "cli")
    cli.set_context("demo", server.url, pipeline="orders")
    ui = UiProcess(cli).start()
    watchers: list[subprocess.Popen] = []
    try:
        page_path = ui.page_url("/pipeline", c="demo", p="orders")
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            entry = context.new_page()
            entry.goto(ui.url)  # the token becomes the context's cookie once

            def render() -> None:
                page = context.new_page()
                page.goto(page_path, wait_until="commit")
                page.locator("#live [data-ready]").wait_for(state="attached")
                page.locator("figure.graph g.node[data-stage]").first.wait_for(state="attached")
                page.locator("#errors [data-ready]").wait_for(state="attached")
                page.close()

            render_ms = timed(render, args.runs)
            with httpx.Client(base_url=server.url, timeout=30) as plane:
                json_ms = timed(lambda: plane.get("/v1/pipelines/orders").raise_for_status(), args.runs)
            with ui.client() as client:
                html_ms = timed(lambda: client.get("/pipeline", params={"c": "demo", "p": "orders"})
                                .raise_for_status(), args.runs)
            cli_ms = timed(lambda: cli.run("status", "-o", "json"), max(5, args.runs // 3))

            assert ui.proc is not None
            idle = cpu_share([ui.proc.pid], args.window)
            pages = [context.new_page() for _ in range(args.pages)]
            pages[0].goto(page_path)
            pages[0].locator("#live [data-ready]").wait_for(state="attached")
            time.sleep(3)
            one = cpu_share([ui.proc.pid], args.window)
            for page in pages[1:]:
                page.goto(page_path)
                page.locator("#live [data-ready]").wait_for(state="attached")
            time.sleep(3)
            stamp = pages[-1].locator("#live .stamp").text_content()
            many = cpu_share([ui.proc.pid], args.window)
            live = pages[-1].locator("#live .stamp").text_content() != stamp  # the pages kept updating
            browser.close()
        for _ in range(args.pages):
            watchers.append(subprocess.Popen([executable(), "status", "--watch", "-o", "jsonl", "--interval", "1"],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli.env(),
                                             cwd=cli.root))
        time.sleep(3)
        terminals = cpu_share([w.pid for w in watchers], args.window)
    finally:
        for w in watchers:
            w.terminate()
            w.wait(10)
        ui.stop()
        server.stop()

    load = os.getloadavg()[0]
    r_med, r_p90 = median_p90(render_ms)
    j_med, _ = median_p90(json_ms)
    h_med, _ = median_p90(html_ms)
    c_med, _ = median_p90(cli_ms)
    print(f"pipelinectl ui benchmark ({os.cpu_count()} CPUs, load average {load:.1f}, {args.runs} runs)\n")
    print("| what | median ms | p90 ms | x raw JSON |")
    print("|---|---|---|---|")
    print(f"| first complete render of the pipeline page (Chromium) | {r_med:.0f} | {r_p90:.0f} | {r_med / j_med:.1f} |")
    print(f"| the page's HTML from `pipelinectl ui` (httpx) | {h_med:.1f} | | {h_med / j_med:.1f} |")
    print(f"| raw JSON `GET /v1/pipelines/orders` on the plane (httpx) | {j_med:.1f} | | 1.0 |")
    print(f"| `pipelinectl status -o json` (whole process) | {c_med:.0f} | | {c_med / j_med:.1f} |")
    print()
    print("| CPU over the window (share of one core) | ui | peer |")
    print("|---|---|---|")
    print(f"| no page open | {idle * 100:.1f}% | |")
    print(f"| 1 live page | {one * 100:.1f}% | |")
    print(f"| {args.pages} live pages | {many * 100:.1f}% | {args.pages} x `status --watch --interval 1`: "
          f"{terminals * 100:.1f}% ({many / terminals:.2f}x) |" if terminals else "")
    print(f"\nwindow {args.window:.0f} s per figure; the last page updated during it: {'yes' if live else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
