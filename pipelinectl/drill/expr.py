"""Assertions on a verb's JSON output: `PATH [OP VALUE]`, a small jq-lite.

PATH walks the document: `items[0].status`, `items[-1].id`, `stages[name=charge].state`
(the first element whose field equals the text), `items[*].key` (every element's
field, as a list), and `.length` (size of a list, mapping or string). OP is one of
`== != < <= > >= contains !contains in`; VALUE is a YAML scalar or flow list
(`3`, `paused`, `"two words"`, `null`, `[a, b]`). A bare PATH asserts that the value
exists and is truthy. A path that is not there makes the comparison false (the
report says `missing`), never an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

OPS = ("!contains", "contains", "==", "!=", "<=", ">=", "<", ">", "in")
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


class ExprError(ValueError):
    """The expression is malformed (a validation error in the drill file)."""


class _Missing:
    def __repr__(self) -> str:
        return "missing"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Expr:
    text: str
    path: tuple[tuple[str, Any], ...]
    op: str | None
    value: Any

    def evaluate(self, document: Any) -> tuple[bool, Any]:
        """(holds, actual value)."""
        actual = resolve(self.path, document)
        if self.op is None:
            return (actual is not MISSING and bool(actual)), actual
        if actual is MISSING:
            return False, actual
        try:
            return bool(_compare(self.op, actual, self.value)), actual
        except TypeError:
            return False, actual


def _compare(op: str, actual: Any, value: Any) -> bool:
    if op in ("==", "!="):
        same = actual == value or (isinstance(value, str) and not isinstance(actual, str) and str(actual) == value)
        return same if op == "==" else not same
    if op == "contains":
        return value in actual
    if op == "!contains":
        return value not in actual
    if op == "in":
        return actual in value
    if isinstance(actual, bool) or isinstance(value, bool):
        raise TypeError("booleans are not ordered")
    return {"<": actual < value, "<=": actual <= value, ">": actual > value, ">=": actual >= value}[op]


def parse_path(text: str) -> tuple[tuple[str, Any], ...]:
    """`a.b[0].c[name=x][*].length` -> (("key","a"), ("key","b"), ("index",0), ...)."""
    steps: list[tuple[str, Any]] = []
    i, n = 0, len(text)
    if not text:
        raise ExprError("empty path")
    expect_key = True
    while i < n:
        ch = text[i]
        if ch == "[":
            end = text.find("]", i)
            if end < 0:
                raise ExprError(f"unclosed '[' in path '{text}'")
            inner = text[i + 1:end].strip()
            if inner == "*":
                steps.append(("all", None))
            elif re.fullmatch(r"-?\d+", inner):
                steps.append(("index", int(inner)))
            elif "=" in inner:
                field, _, want = inner.partition("=")
                if not _SEGMENT.fullmatch(field.strip()) or not want.strip():
                    raise ExprError(f"filter '[{inner}]' must look like [field=value]")
                steps.append(("where", (field.strip(), want.strip().strip("'\""))))
            else:
                raise ExprError(f"'[{inner}]' in path '{text}': use [N], [*] or [field=value]")
            i = end + 1
            expect_key = False
        elif ch == ".":
            if expect_key and i > 0:
                raise ExprError(f"path '{text}': unexpected '.' at '{text[i:]}'")
            i += 1
            expect_key = True
        else:
            if not expect_key:
                raise ExprError(f"path '{text}': expected '.' or '[' at '{text[i:]}'")
            match = _SEGMENT.match(text, i)
            if not match:
                raise ExprError(f"path '{text}': unexpected '{text[i]}'")
            name = match.group(0)
            steps.append(("length", None) if name == "length" and steps else ("key", name))
            i = match.end()
            expect_key = False
    if expect_key and text.endswith("."):
        raise ExprError(f"path '{text}' ends with '.'")
    return tuple(steps)


def resolve(path: tuple[tuple[str, Any], ...], document: Any) -> Any:
    value = document
    for index, (kind, arg) in enumerate(path):
        if value is MISSING:
            return MISSING
        if kind == "all":
            if not isinstance(value, list):
                return MISSING
            rest = path[index + 1:]
            values = [resolve(rest, v) for v in value]
            return [v for v in values if v is not MISSING]
        if kind == "key":
            value = value.get(arg, MISSING) if isinstance(value, dict) else MISSING
        elif kind == "index":
            value = value[arg] if isinstance(value, list) and -len(value) <= arg < len(value) else MISSING
        elif kind == "where":
            field, want = arg
            found = [v for v in value if isinstance(v, dict) and str(v.get(field)) == want] \
                if isinstance(value, list) else []
            value = found[0] if found else MISSING
        elif kind == "length":
            value = len(value) if isinstance(value, (list, dict, str)) else MISSING
    return value


def _split(text: str) -> tuple[str, str]:
    """PATH is everything up to the first space or operator character outside brackets."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0 and (ch.isspace() or ch in "=!<>"):
            return text[:i], text[i:].strip()
    return text, ""


def parse(text: str) -> Expr:
    import yaml

    if not isinstance(text, str) or not text.strip():
        raise ExprError("empty assertion")
    path_text, rest = _split(text.strip())
    path = parse_path(path_text)
    if not rest:
        return Expr(text, path, None, None)
    for op in OPS:
        if rest.startswith(op) and (op[-1] in "=<>" or len(rest) == len(op) or not rest[len(op)].isalnum()):
            raw = rest[len(op):].strip()
            break
    else:
        raise ExprError(f"'{rest.split()[0]}' is not an operator (use {' '.join(OPS)})")
    if not raw:
        raise ExprError(f"'{op}' needs a value on its right")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ExprError(f"cannot read the value '{raw}'") from None
    if op in ("<", "<=", ">", ">=") and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ExprError(f"'{op}' compares numbers; '{raw}' is not a number")
    if op == "in" and not isinstance(value, list):
        raise ExprError(f"'in' needs a list on its right, e.g. [a, b]; got '{raw}'")
    return Expr(text, path, op, value)
