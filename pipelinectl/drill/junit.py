"""The drill journal as JUnit XML, the report format CI systems display.

One <testcase> per step record of the journal (probes appear twice: before
and after the method; rollbacks are test cases too, so a failed rollback is red).
A step that failed is a <failure>, one that errored, timed out or was
interrupted is an <error>, one that never ran is <skipped>. A step that failed
under `continue_on_failure` passes here and says so in <system-out>, matching
the drill's exit code.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: Any) -> str:
    return _INVALID_XML.sub("?", str(text if text is not None else ""))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower() or "drill"


def to_xml(journal: dict[str, Any]) -> ET.Element:
    steps = journal["steps"]
    failures = sum(1 for s in steps if s["outcome"] == "failed" and not s["tolerated"])
    errors = sum(1 for s in steps if s["outcome"] in ("errored", "timed_out", "interrupted") and not s["tolerated"])
    skipped = sum(1 for s in steps if s["outcome"] == "skipped")
    totals = {"tests": str(len(steps)), "failures": str(failures), "errors": str(errors), "skipped": str(skipped),
              "time": f"{journal['duration_seconds']:.3f}"}
    suites = ET.Element("testsuites", {"name": "pipelinectl drill", **totals})
    suite = ET.SubElement(suites, "testsuite", {"name": _clean(journal["title"]), **totals,
                                                "timestamp": journal["started_at"], "hostname": socket.gethostname()})
    props = ET.SubElement(suite, "properties")
    for key in ("file", "context", "status", "exit_code"):
        ET.SubElement(props, "property", {"name": key, "value": _clean(journal.get(key))})
    base = f"drill.{_slug(journal['title'])}"
    for number, step in enumerate(steps, start=1):
        case = ET.SubElement(suite, "testcase", {
            "classname": f"{base}.{step['phase']}",
            "name": _clean(f"{number:02d} {step['name']}"),
            "time": f"{step['duration_seconds']:.3f}",
            "file": _clean(journal["file"]),
            "line": str(step["line"]),
        })
        detail = _clean("\n".join(filter(None, [
            step["message"],
            "command: " + " ".join(step["command"]) if step.get("command") else "",
            *(f"assert {a['that']}: {'ok' if a['ok'] else 'FAILED'} (actual: {a['actual']})"
              for a in step.get("assertions") or []),
        ])))
        outcome = step["outcome"]
        if outcome == "skipped":
            ET.SubElement(case, "skipped", {"message": _clean(step["message"] or "not run")})
        elif step["tolerated"]:
            pass
        elif outcome == "failed":
            ET.SubElement(case, "failure", {"message": _clean(step["message"]), "type": "failed"}).text = detail
        elif outcome != "passed":
            ET.SubElement(case, "error", {"message": _clean(step["message"]), "type": outcome}).text = detail
        out = step.get("stdout") or ""
        if step["tolerated"]:
            out = f"{outcome} (continue_on_failure): {step['message']}\n{out}"
        if out:
            ET.SubElement(case, "system-out").text = _clean(out)
        if step.get("stderr"):
            ET.SubElement(case, "system-err").text = _clean(step["stderr"])
    return suites


def write(journal: dict[str, Any], path: str | Path) -> None:
    tree = ET.ElementTree(to_xml(journal))
    ET.indent(tree)
    target = Path(path)
    if target.parent and not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
    tree.write(target, encoding="utf-8", xml_declaration=True)
