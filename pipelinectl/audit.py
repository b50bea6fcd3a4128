"""Append-only JSONL audit log of mutations, in the XDG state dir.

One line per mutating command: time, OS user, context, verb, target,
arguments, result and the plane's request id; under `pipelinectl apply`, also
the plan's hash (`plan`). Secrets are redacted before
anything is written. Failing to write the log warns; it never fails the verb
that already happened.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .redact import redact


def audit_path() -> Path:
    override = os.environ.get("PIPELINECTL_AUDIT_LOG")
    if override:
        return Path(override)
    from .config import state_dir

    return state_dir() / "audit.jsonl"


def append(*, context: str | None, verb: str, target: str, arguments: dict[str, Any], result: str,
           request_id: str | None = None, plan: str | None = None) -> None:
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid())
    entry = {
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "user": user,
        "context": context,
        "verb": verb,
        "target": target,
        "arguments": arguments,
        "result": result,
        "request_id": request_id,
    }
    if plan is not None:
        entry["plan"] = plan
    line = redact(json.dumps(entry, ensure_ascii=False, default=str, separators=(",", ":")))
    path = audit_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError as exc:
        import sys

        sys.stderr.write(f"warning: could not write the audit log {path}: {exc.strerror}\n")


def applied(plan: str) -> dict[str, Any] | None:
    """The line of a mutation that applying `plan` made and that did not fail, if this log holds one."""
    try:
        lines = audit_path().read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if plan not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        result = str(entry.get("result", ""))
        if entry.get("plan") == plan and not result.startswith(("error", "interrupted", "already applied")):
            return entry
    return None
