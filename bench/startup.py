"""Startup benchmark: whole processes, pipelinectl beside the Go temporal CLI doing the equivalent, same run.

    .venv/bin/python bench/startup.py [--runs 21] [--check] [--importtime] [--no-help]

Starts a quiet reference plane (the demo pipeline, no input) and a Temporal dev server
(with a few workflows and no worker, so they stay running), then runs every command
below as a fresh process, interleaved round-robin so machine noise hits them all alike
(one warm-up round is discarded, which also writes the .pyc files an install has):

  floor      python -c pass; temporal --version; pipelinectl --version / --help
  read verbs pipelinectl {status, dlq list, saga list, replay list} -o json against the
             plane, and {status, saga list} against Temporal (its driver has no DLQ or
             replay jobs), each beside the Go CLI's equivalent read against its dev
             server: status ~ `operator namespace describe`, dlq list ~ `workflow list
             --query ExecutionStatus="Failed"`, saga list ~ `workflow list`, replay list
             ~ `batch list`; all -o json
  help       `--help` of every pipelinectl sub-command beside `temporal workflow list --help`

It prints median and min milliseconds and each row's ratio to its Go peer measured in the
same run, in wall time and in CPU time (user + system of the process, which load on the
other cores inflates less). `--check` exits 1 when a row's wall median is over TARGET_RATIO. `--importtime` adds the
heaviest imports of a few paths (python -X importtime). PYTHONDONTWRITEBYTECODE is
dropped from the children's environment: an installed CLI runs from its .pyc files.
Report the machine's load with the figures (`uptime`): other work on the cores inflates
both sides, not always alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
TARGET_RATIO = 2.0
WORKFLOWS = 4  # listed by `saga list` / `workflow list` on the dev server


def _exe(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"error: {name} not found next to {sys.executable} or on PATH")
    return found


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIPELINECTL_", "XDG_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".state"),
               XDG_CACHE_HOME=str(home / ".cache"), NO_COLOR="1")
    return env


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: the child's user + system time, which other load inflates less)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    spent = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.decode(errors='replace')[-500:]}")
    return spent, usage.ru_utime + usage.ru_stime


def _start_plane(tmp: Path):  # noqa: ANN202 - a RunningServer
    from tests.reliability.plane import start_quiet_plane

    return start_quiet_plane(tmp / "plane")


def _start_temporal(tmp: Path):  # noqa: ANN202 - a DevServer
    from pipelinectl_temporal.testing import DevServer

    server = DevServer(tmp / "temporal").start()
    for n in range(WORKFLOWS):  # no worker polls the queue: they stay running
        server.start_saga("default", f"bench-{n}", {"id": f"bench-{n}"}, task_queue="bench-no-worker")
    server.wait_visible("default", "", WORKFLOWS)
    return server


def _write_contexts(home: Path, plane_url: str, temporal_url: str | None) -> None:
    config = home / ".config" / "pipelinectl" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    text = (f"current-context: plane\ncontexts:\n  plane:\n    url: {plane_url}\n    pipeline: orders\n"
            f"    token-env: BENCH_TOKEN\n")
    if temporal_url:
        text += f"  temporal:\n    driver: temporal\n    url: {temporal_url}\n    namespace: default\n"
    config.write_text(text)
    config.chmod(0o600)


def help_paths() -> list[list[str]]:
    """Every sub-command of the tree (not the top level, which --help covers)."""
    import typer

    from pipelinectl.cli.app import build_root
    from pipelinectl.cli.commands import COMMANDS

    paths: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        paths.append(path)
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])

    for name, spec in COMMANDS.items():
        if spec.alias_of is None:
            walk(typer.main.get_command(build_root(name)).commands[name], [name])
    return paths


def import_profile(argv: list[str], env: dict[str, str], top: int = 12) -> str:
    """The heaviest cumulative imports of one pipelinectl invocation (python -X importtime on the script)."""
    done = subprocess.run([sys.executable, "-X", "importtime", _exe("pipelinectl"), *argv], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative, name = line.replace("import time:", "").split("|")[:3]
        rows.append((int(cumulative), int(self_us), name[1:].rstrip()))  # nested names keep their indent
    total_top = sum(c for c, _, n in rows if not n.startswith(" "))
    lines = [f"  imports for 'pipelinectl {' '.join(argv)}': {total_top / 1000:.1f} ms at top level; heaviest:"]
    for cumulative, _, name in sorted(rows, reverse=True)[:top]:
        lines.append(f"    {cumulative / 1000:8.1f} ms  {name.strip()}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--check", action="store_true", help=f"exit 1 if a row is over {TARGET_RATIO:g}x its peer")
    parser.add_argument("--importtime", action="store_true", help="print the import profile of a few paths")
    parser.add_argument("--no-help", action="store_true", help="skip the sub-command --help rows")
    parser.add_argument("--no-temporal", action="store_true", help="no Temporal dev server (and no Temporal rows)")
    args = parser.parse_args()

    pipelinectl, temporal = _exe("pipelinectl"), _exe("temporal")
    go_version = "temporal --version"
    # name -> (argv, the name of its Go peer row)
    rows: dict[str, tuple[list[str], str]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], go_version),
        go_version: ([temporal, "--version"], go_version),
        "pipelinectl --version": ([pipelinectl, "--version"], go_version),
        "pipelinectl --help": ([pipelinectl, "--help"], go_version),
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        home.mkdir()
        env = _env(home)
        plane = _start_plane(tmp)
        server = None
        try:
            env["BENCH_TOKEN"] = plane.tokens["viewer"]
            if not args.no_temporal:
                server = _start_temporal(tmp)
            _write_contexts(home, plane.url, server.http_url if server else None)
            if server:
                go = [temporal, "--address", server.address, "-o", "json"]
                peers = {
                    "status": [*go, "operator", "namespace", "describe", "-n", "default"],
                    "dlq list": [*go, "workflow", "list", "--query", 'ExecutionStatus="Failed"'],
                    "saga list": [*go, "workflow", "list"],
                    "replay list": [*go, "batch", "list"],
                }
                for verb, argv in peers.items():
                    rows[f"temporal ~ {verb}"] = (argv, f"temporal ~ {verb}")
                for verb in peers:
                    rows[f"pipelinectl {verb} (plane)"] = ([pipelinectl, *verb.split(), "-o", "json"],
                                                           f"temporal ~ {verb}")
                for verb in ("status", "saga list"):
                    rows[f"pipelinectl {verb} (Temporal)"] = (
                        [pipelinectl, "--context", "temporal", *verb.split(), "-o", "json"], f"temporal ~ {verb}")
            if not args.no_help:
                help_peer = "temporal workflow list --help"
                rows[help_peer] = ([temporal, "workflow", "list", "--help"], help_peer)
                for path in help_paths():
                    rows[f"pipelinectl {' '.join(path)} --help"] = ([pipelinectl, *path, "--help"], help_peer)

            for argv, _ in rows.values():  # warm the page cache, write .pyc files; not counted
                _time(argv, env)
            samples: dict[str, list[float]] = {name: [] for name in rows}
            cpu: dict[str, list[float]] = {name: [] for name in rows}
            load_before = os.getloadavg()[0]
            for _ in range(args.runs):
                for name, (argv, _) in rows.items():
                    wall, used = _time(argv, env)
                    samples[name].append(wall)
                    cpu[name].append(used)
            load_after = os.getloadavg()[0]
            profiles = []
            if args.importtime:
                for argv in (["--help"], ["saga", "list", "--help"], ["status", "-o", "json"],
                             ["--context", "temporal", "saga", "list", "-o", "json"]):
                    if "temporal" in argv and server is None:
                        continue
                    profiles.append(import_profile(argv, env))
        finally:
            plane.stop()
            if server is not None:
                server.stop()

    median = {name: statistics.median(values) for name, values in samples.items()}
    cpu_median = {name: statistics.median(values) for name, values in cpu.items()}
    print(f"startup, whole processes, median of {args.runs} interleaved runs ({os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}, load average {load_before:.1f} before, {load_after:.1f} after)")
    print("wall: elapsed; cpu: the process's user+system time; x peer: the row's median over its Go peer's")
    print(f"{'command':46} {'wall ms':>8} {'min':>6} {'x peer':>7} {'cpu ms':>7} {'x peer':>7}  peer")
    over = []
    for name, values in samples.items():
        peer = rows[name][1]
        ratio = median[name] / median[peer]
        cpu_ratio = cpu_median[name] / cpu_median[peer]
        print(f"{name:46} {median[name] * 1000:8.1f} {min(values) * 1000:6.1f} {ratio:7.2f} "
              f"{cpu_median[name] * 1000:7.1f} {cpu_ratio:7.2f}  {peer}")
        if name.startswith("pipelinectl") and ratio > TARGET_RATIO:
            over.append(name)
    helps = [n for n in samples if n.startswith("pipelinectl ") and n.endswith(" --help") and n != "pipelinectl --help"]
    if helps:
        worst = max(helps, key=lambda n: median[n])
        print(f"sub-command --help: {len(helps)} commands, median of medians "
              f"{statistics.median(median[n] for n in helps) * 1000:.1f} ms, slowest {worst} "
              f"{median[worst] * 1000:.1f} ms ({median[worst] / median[rows[worst][1]]:.2f}x)")
    verdict = "OK" if not over else f"OVER TARGET ({len(over)}): " + ", ".join(over)
    print(f"target: every pipelinectl row within {TARGET_RATIO:g}x its Go peer: {verdict}")
    for profile in profiles:
        print(profile)
    return 1 if (args.check and over) else 0


if __name__ == "__main__":
    sys.exit(main())
