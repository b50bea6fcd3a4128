"""On an 80-column terminal (a pty) and piped, against a real plane: IDs and stage names are never cut;
a table drops its less important columns first and cuts only free text (messages, errors) with an
ellipsis; `-o wide` and JSON keep every message whole. Piped output is never narrowed.
"""

from __future__ import annotations

import re

from tests.cli.verbs_e2e import Plane, plane_fixture  # noqa: F401  (the plane fixture)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
WIDTH = 80


def pty(plane: Plane, *args: str) -> list[str]:
    result = plane.cli.run_pty(*args, columns=WIDTH, timeout=60)
    assert result.rc == 0, result
    return [ANSI.sub("", line).rstrip() for line in result.stdout.splitlines()]


def piped(plane: Plane, *args: str) -> list[str]:
    result = plane.run(*args, env={"COLUMNS": str(WIDTH)})
    assert result.rc == 0, result
    return result.stdout.splitlines()


def words(lines: list[str]) -> set[str]:
    return {word for line in lines for word in line.split()}


def test_status_keeps_stage_names_states_and_headers_whole(plane: Plane) -> None:
    stages = plane.get("")["stages"]
    for fmt in ("table", "wide"):
        lines = pty(plane, "status", "-o", fmt)
        text = "\n".join(lines)
        assert "…" not in text, text
        assert {s["name"] for s in stages} <= words(lines), text
        header = next(line for line in lines if line.startswith("STAGE"))
        assert header.split()[:2] == ["STAGE", "STATE"], text
        if fmt == "table":
            assert all(len(line) <= WIDTH for line in lines), text
        else:  # wide drops nothing: every column the wide view has, whole
            for name in ("PROCESSED", "FAILED", "VERSION", "PAUSED UNTIL", "ERRORS BY KIND"):
                assert name in text, text


def test_saga_list_drops_columns_before_it_cuts_an_id(plane: Plane) -> None:
    plane.wait_for("two stuck sagas", lambda: len(plane.sagas("stuck")) >= 2)  # stuck sagas wait: stable rows
    lines = pty(plane, "saga", "list", "--status", "stuck", "--limit", "20")
    text = "\n".join(lines)
    header = lines[0].split()
    assert header[0] == "ID" and "STATUS" in header and "AGE" in header, text
    assert all(len(line) <= WIDTH for line in lines), text
    rows = [line.split() for line in lines[1:] if line.startswith("saga-")]
    assert rows, text
    ids = {row[0] for row in rows}
    listed = plane.run("saga", "list", "--status", "stuck", "-o", "json").json()["items"]
    known = {s["id"]: s for s in listed}
    assert ids <= set(known), f"every ID whole: {ids - set(known)}"
    for row in rows:
        assert known[row[0]]["status"] in row, (row, known[row[0]])
    cut = [line for line in lines if "…" in line]
    for line in cut:  # only the last error may be cut, and only at its end
        assert line.endswith("…"), line


def test_saga_inspect_steps_keep_their_status_whole(plane: Plane) -> None:
    saga = plane.sagas("stuck")[0]
    full = plane.saga(saga["id"])
    lines = pty(plane, "saga", "inspect", f"saga/{saga['id']}")
    steps = lines[lines.index(next(line for line in lines if line.startswith("STEP"))) + 1:]
    steps = steps[:len(full["steps"])]
    for step, line in zip(full["steps"], steps, strict=True):
        assert line.split()[:2] == [step["name"], step["status"]], (line, step)


def test_dlq_messages_are_cut_only_in_table_mode(plane: Plane) -> None:
    plane.wait_for("dead letters", lambda: len(plane.dlq_ids()) >= 3)
    table = pty(plane, "dlq", "list", "--limit", "30")
    wide = pty(plane, "dlq", "list", "--limit", "30", "-o", "wide")
    plain = piped(plane, "dlq", "list", "--limit", "1000")
    plain_wide = piped(plane, "dlq", "list", "--limit", "1000", "-o", "wide")
    items = {i["id"]: i for i in plane.get("/dlq", page_size=1000)["items"]}  # read after: the demo adds more
    assert all(len(line) <= WIDTH for line in table), table
    for line in table[1:]:
        ident = line.split()[0]
        assert ident in items, f"ID whole: {line!r}"
        assert items[ident]["stage"] in line.split()
    assert "…" not in "\n".join(wide), wide
    shown = words(wide)
    for ident in {line.split()[0] for line in wide[1:] if line.startswith("dlq-")}:
        assert set(items[ident]["message"].split()) <= shown, items[ident]["message"]
    listed = {line.split()[0] for line in plain[1:]} & {line.split()[0] for line in plain_wide[1:]}
    long = [i for i in items.values() if len(i["message"]) > 50 and i["id"] in listed]
    assert long, "the demo's ship failures carry a message over 50 characters"
    for item in long:  # piped: the table cuts at 50 with an ellipsis, wide keeps it whole, on one line
        assert any(item["message"][:49] + "…" in line for line in plain if line.startswith(item["id"] + " "))
        assert any(item["message"] in line for line in plain_wide if line.startswith(item["id"] + " "))
