"""A stand-in for `python -m pipelinectl` in the runner's unit tests: stages in a JSON file.

    fake_pipelinectl.py [--context C] [--timeout T] VERB ARGS... [-o json] [--yes]

status -> {"kind": "Pipeline", "stages": [...]}; pause/resume NAME change the file
(exit 3 for an unknown stage); args are logged one line per call to $FAKE_LOG.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    state_path = os.environ["FAKE_STATE"]
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    args = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--context", "--config", "--timeout", "-o"):
            skip = True
            continue
        if arg != "--yes":
            args.append(arg)
    with open(state_path) as f:
        stages = json.load(f)
    verb = args[0]
    if verb == "status":
        print(json.dumps({"kind": "Pipeline", "name": "orders",
                          "stages": [{"name": n, "state": s} for n, s in stages.items()]}))
        return 0
    if verb in ("pause", "resume"):
        name = args[1]
        if name not in stages:
            print(f"error: unknown stage '{name}'", file=sys.stderr)
            return 3
        stages[name] = "paused" if verb == "pause" else "running"
        with open(state_path, "w") as f:
            json.dump(stages, f)
        print(f"stage {name} {stages[name]}")
        return 0
    if verb == "replay":
        print(json.dumps({"kind": "ReplayJob", "id": "rp-7", "total": 41, "yes": "--yes" in argv}))
        return 0
    print(f"error: unknown command {verb}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
