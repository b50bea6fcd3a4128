"""Read a drill file and check it completely before anything runs.

Every problem is reported as `FILE:LINE: FIELD: message` (FIELD is a path like
`method[2].wait.for`): the data is checked as plain Python values, and each
error's path is mapped back to the YAML node it came from (yaml's node marks),
so the line is the line the author wrote. The same rules are published as a
JSON Schema (docs/schema/drill.schema.json); tests keep the two in agreement.
Semantic checks the schema cannot express (a condition's syntax, a verb that
needs `yes: true`, a variable used before it is captured) are made here too.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelinectl.errors import UsageError

STEP_TYPES = ("run", "wait", "assert", "sleep", "shell")
STEP_KEYS = {"name", "description", "timeout", "continue_on_failure", "yes", "expect_exit", "capture", *STEP_TYPES}
TOP_KEYS = {"version", "title", "description", "variables", "hypothesis", "method", "rollbacks"}
HYPOTHESIS_KEYS = {"title", "probes"}
WAIT_KEYS = {"for", "target", "stage", "error_kind", "timeout"}
ASSERT_KEYS = {"run", "that", "within", "interval"}
# Commands a step may run (not config, drill, server, demo: a drill acts on one plane, never on the setup).
VERBS = ("status", "wait", "pause", "resume", "drain", "scale", "resize", "replay", "dlq", "saga", "version", "plugin")
READ_ONLY = {("status",), ("wait",), ("version",), ("plugin",), ("dlq", "list"), ("dlq", "inspect"), ("dlq", "show"),
             ("saga", "list"), ("saga", "inspect"), ("saga", "show"), ("replay", "list"), ("replay", "show")}
RESERVED_FLAGS = ("--context", "--config", "--confirm-context", "--yes", "-y")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VAR = re.compile(r"\$\{([^}]*)\}")
ARITH = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:([+-])\s*(\d+))?\s*$")  # ${name}, ${offset+1}
DEFAULT_TIMEOUT = 60.0
MAX_SLEEP = 3600.0  # seconds a sleep step may hold
WAIT_GRACE = 30.0  # a wait step's process may take this much longer than the wait itself


class DrillFileError(UsageError):
    """The drill file is invalid; `errors` holds every `FILE:LINE: FIELD: message` line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(errors[0] if len(errors) == 1 else f"{errors[0]} (and {len(errors) - 1} more)")
        self.errors = errors


@dataclass
class Step:
    phase: str  # hypothesis | method | rollback
    index: int
    name: str
    type: str
    spec: Any  # the step type's value (substituted at run time)
    line: int
    timeout: float
    continue_on_failure: bool = False
    yes: bool = False
    expect_exit: list[int] = field(default_factory=lambda: [0])
    capture: dict[str, str] = field(default_factory=dict)


@dataclass
class Drill:
    path: str
    title: str
    description: str
    variables: dict[str, str]
    hypothesis_title: str
    probes: list[Step]
    method: list[Step]
    rollbacks: list[Step]

    def steps(self) -> list[Step]:
        return [*self.probes, *self.method, *self.rollbacks]


def verb_words(args: list[str]) -> tuple[str, ...]:
    """`["dlq", "redrive", "x"]` -> ("dlq", "redrive"): the command and its subcommand, if any."""
    words = [a for a in args if not a.startswith("-")]
    if not words:
        return ()
    if words[0] in ("dlq", "saga", "replay") and len(words) > 1 and words[1] in (
            "list", "inspect", "show", "redrive", "purge", "force-fail", "retry", "force-complete", "cancel"):
        return tuple(words[:2])
    return (words[0],)


def needs_yes(args: list[str]) -> bool:
    """The verbs that ask for confirmation: a drill must say `yes: true` for them."""
    words = verb_words(args)
    if words in (("dlq", "redrive"), ("dlq", "purge"), ("saga", "force-fail"), ("saga", "force-complete")):
        return True
    if words and words[0] == "replay" and words not in (("replay", "list"), ("replay", "show"),
                                                         ("replay", "cancel")):
        return "--dry-run" not in args
    return words[:1] == ("saga",) and any(a in ("--query", "-q") or a.startswith("--query=") for a in args)


def split_args(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return shlex.split(str(value))


# -- YAML with marks ----------------------------------------------------------------------------------
def _loader() -> Any:
    """A safe loader where only true/false are booleans: `yes: true` is a key, `on`/`no` are strings (YAML 1.2)."""
    import yaml

    class DrillLoader(yaml.SafeLoader):
        pass

    DrillLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    DrillLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                      list("tTfF"))
    return DrillLoader


def _node_at(root: Any, path: tuple[Any, ...]) -> tuple[Any, bool]:
    """The deepest node along `path`; True when the whole path was found."""
    import yaml

    node = root
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    node = value
                    break
            else:
                return node, False
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        else:
            return node, False
    return node, True


def _key_node(root: Any, path: tuple[Any, ...]) -> Any:
    """For an unknown key: the key's own node, so the line points at the key."""
    import yaml

    parent, found = _node_at(root, path[:-1])
    if found and isinstance(parent, yaml.MappingNode):
        for key, _ in parent.value:
            if key.value == path[-1]:
                return key
    return None


def show_path(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


class _Checker:
    def __init__(self, file: str, root: Any) -> None:
        self.file = file
        self.root = root
        self.errors: list[tuple[int, str]] = []

    def line(self, path: tuple[Any, ...], at_key: bool = False) -> int:
        node = _key_node(self.root, path) if at_key else None
        if node is None:
            node, _ = _node_at(self.root, path)
        return node.start_mark.line + 1 if node is not None else 1

    def error(self, path: tuple[Any, ...], message: str, *, at_key: bool = False) -> None:
        line = self.line(path, at_key)
        self.errors.append((line, _printable(f"{self.file}:{line}: {show_path(path)}: {message}")))

    # -- shapes -----------------------------------------------------------------------------------------
    def mapping(self, value: Any, path: tuple[Any, ...], allowed: set[str], required: tuple[str, ...] = ()) -> bool:
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping, got {_type(value)}")
            return False
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                self.error(path + (key,), f"unknown field (allowed: {', '.join(sorted(allowed))})", at_key=True)
        for key in required:
            if key not in value:
                self.error(path, f"missing required field '{key}'")
        return True

    def string(self, value: Any, path: tuple[Any, ...], *, empty: bool = False) -> bool:
        if not isinstance(value, str) or (not empty and not value.strip()):
            self.error(path, f"must be a non-empty string, got {_type(value)}")
            return False
        return True

    def boolean(self, value: Any, path: tuple[Any, ...]) -> None:
        if not isinstance(value, bool):
            self.error(path, f"must be true or false, got {_type(value)}")

    def seconds(self, value: Any, path: tuple[Any, ...], *, maximum: float = 86400,
                known: set[str] | None = None) -> float | None:
        """A number of seconds or a duration like `30s`, `5m`.

        With `known` (the variables so far), a `${name}` is accepted: its variable must
        exist, and the value is checked when the step runs (None here).
        """
        if known is not None and isinstance(value, str) and "${" in value:
            _vars_in(self, value, path, known)
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            self.error(path, f"must be seconds or a duration like 30s or 5m, got {_type(value)}")
            return None
        if isinstance(value, (int, float)):
            seconds = float(value)
        else:
            from pipelinectl.timeparse import parse_duration

            try:
                seconds = parse_duration(value, option="duration").total_seconds()
            except UsageError:
                self.error(path, f"'{value}' is not a duration (30s, 5m, 1h)")
                return None
        if not 0 < seconds <= maximum:
            self.error(path, f"must be more than 0 and at most {maximum:g} seconds")
            return None
        return seconds


def _printable(text: str) -> str:
    """One line whatever the file holds: control characters (a key with a newline) are shown escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _type(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "nothing (null)"}.get(type(value), type(value).__name__)


# -- the drill ----------------------------------------------------------------------------------------
def load(path: str | Path, overrides: dict[str, str] | None = None) -> Drill:
    """Parse and check a drill file; raises DrillFileError listing every problem."""
    import yaml

    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"drill file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read drill file {file}: {exc}") from None
    try:
        loader = _loader()
        root = yaml.compose(text, Loader=loader)
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else file
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DrillFileError([f"{where}: not valid YAML: {problem}"]) from None
    except RecursionError:
        raise DrillFileError([f"{file}: nested too deeply"]) from None
    return check(data, root, file, overrides or {})


def check(data: Any, root: Any, file: str, overrides: dict[str, str]) -> Drill:
    c = _Checker(file, root)
    if not c.mapping(data, (), TOP_KEYS, ("title", "method")):
        raise DrillFileError([e for _, e in c.errors])
    if "version" in data and data["version"] != 1:
        c.error(("version",), "only version 1 exists")
    if "title" in data:
        c.string(data["title"], ("title",))
    if "description" in data:
        c.string(data["description"], ("description",), empty=True)

    variables: dict[str, str] = {}
    raw_vars = data.get("variables", {})
    if raw_vars is None:
        raw_vars = {}
    if isinstance(raw_vars, dict):
        for key, value in raw_vars.items():
            if not isinstance(key, str) or not NAME.match(key):
                c.error(("variables", key), "a variable name is letters, digits and _", at_key=True)
            elif isinstance(value, (dict, list)) or value is None:
                c.error(("variables", key), f"must be a string, number or boolean, got {_type(value)}")
            else:
                variables[key] = str(value).lower() if isinstance(value, bool) else str(value)
    else:
        c.error(("variables",), f"must be a mapping of name: value, got {_type(raw_vars)}")
    for key, value in overrides.items():
        if key not in variables and not c.errors:
            known = ", ".join(sorted(variables)) or "none"
            raise UsageError(f"--var {key}: the drill declares no variable '{key}' (declared: {known})")
        variables[key] = value

    known = set(variables)
    probes: list[Step] = []
    hypothesis_title = ""
    hyp = data.get("hypothesis")
    if hyp is not None and c.mapping(hyp, ("hypothesis",), HYPOTHESIS_KEYS, ("probes",)):
        if "title" in hyp:
            c.string(hyp["title"], ("hypothesis", "title"))
            hypothesis_title = str(hyp.get("title") or "")
        probes = _steps(c, hyp.get("probes"), ("hypothesis", "probes"), "hypothesis", known, allow_empty=False)
    method = _steps(c, data.get("method"), ("method",), "method", known, allow_empty=False) if "method" in data else []
    rollbacks = _steps(c, data.get("rollbacks", []), ("rollbacks",), "rollback", known, allow_empty=True)
    if c.errors:
        raise DrillFileError([e for _, e in sorted(c.errors, key=lambda pair: pair[0])])
    return Drill(file, str(data["title"]), str(data.get("description") or ""), variables, hypothesis_title,
                 probes, method, rollbacks)


def _steps(c: _Checker, value: Any, path: tuple[Any, ...], phase: str, known: set[str], *,
           allow_empty: bool) -> list[Step]:
    if value is None:
        value = []
    if not isinstance(value, list):
        c.error(path, f"must be a list of steps, got {_type(value)}")
        return []
    if not value and not allow_empty:
        c.error(path, "needs at least one step")
    steps = []
    for index, raw in enumerate(value):
        step = _step(c, raw, path + (index,), phase, index, known)
        if step is not None:
            steps.append(step)
    return steps


def _vars_in(c: _Checker, value: Any, path: tuple[Any, ...], known: set[str], *, shell: bool = False) -> None:
    """Every `${name}` must be a declared or earlier-captured variable (a shell's own `${X}` is left alone)."""
    texts = value if isinstance(value, list) else [value]
    for text in texts:
        if not isinstance(text, str):
            continue
        for inner in VAR.findall(text):
            match = ARITH.match(inner)
            name = match.group(1) if match else inner
            if match and name in known:
                continue
            if shell and NAME.match(inner):
                continue  # the shell's own variable
            c.error(path, f"unknown variable '${{{inner}}}' (declared or captured so far: "
                          f"{', '.join(sorted(known)) or 'none'})")


def _step(c: _Checker, raw: Any, path: tuple[Any, ...], phase: str, index: int, known: set[str]) -> Step | None:
    if not c.mapping(raw, path, STEP_KEYS):
        return None
    kinds = [k for k in STEP_TYPES if k in raw]
    if len(kinds) != 1:
        c.error(path, f"a step has exactly one of {', '.join(STEP_TYPES)}" + (f" (found {', '.join(kinds)})"
                                                                           if kinds else ""))
        return None
    kind = kinds[0]
    spec = raw[kind]
    where = path + (kind,)
    timeout = DEFAULT_TIMEOUT
    ok_before = len(c.errors)
    args: list[str] = []

    if kind in ("run", "assert"):
        run_value = spec.get("run") if kind == "assert" and isinstance(spec, dict) else spec
        run_path = where + ("run",) if kind == "assert" else where
        if kind == "assert":
            if c.mapping(spec, where, ASSERT_KEYS, ("run", "that")):
                that = spec.get("that")
                items = that if isinstance(that, list) else [that]
                if not items:
                    c.error(where + ("that",), "needs at least one assertion")
                for i, expr_text in enumerate(items):
                    at = where + ("that", i) if isinstance(that, list) else where + ("that",)
                    if not isinstance(expr_text, str):
                        c.error(at, f"an assertion is a string like 'items.length >= 1', got {_type(expr_text)}")
                        continue
                    _vars_in(c, expr_text, at, known)
                    from .expr import ExprError, parse

                    try:
                        parse(VAR.sub("0", expr_text))
                    except ExprError as exc:
                        c.error(at, str(exc))
                within = c.seconds(spec["within"], where + ("within",), known=known) if "within" in spec else None
                if "interval" in spec:
                    c.seconds(spec["interval"], where + ("interval",), maximum=600, known=known)
                timeout = (within or 0) + DEFAULT_TIMEOUT
            else:
                run_value = None
        if run_value is not None:
            if isinstance(run_value, list) and not all(isinstance(a, (str, int, float)) for a in run_value):
                c.error(run_path, "a command list holds strings only")
            elif not isinstance(run_value, (str, list)):
                c.error(run_path, f"must be a command line (string or list), got {_type(run_value)}")
            else:
                try:
                    args = split_args(run_value)
                except ValueError as exc:
                    c.error(run_path, f"cannot split the command line: {exc}")
                _check_args(c, args, run_path, phase, raw, kind)
                _vars_in(c, run_value, run_path, known)
    elif kind == "wait":
        if c.mapping(spec, where, WAIT_KEYS, ("for",)):
            if c.string(spec.get("for"), where + ("for",)):
                _vars_in(c, spec["for"], where + ("for",), known)
                from pipelinectl.cli.wait import parse_condition

                try:
                    parse_condition(VAR.sub("0", spec["for"]) if "${" in spec["for"] else spec["for"])
                except UsageError as exc:
                    c.error(where + ("for",), exc.message.removeprefix("--for: "))
            for key in ("target", "stage", "error_kind"):
                if key in spec and c.string(spec[key], where + (key,)):
                    _vars_in(c, spec[key], where + (key,), known)
            _check_wait_target(c, spec, where)
            wait_for = c.seconds(spec["timeout"], where + ("timeout",), known=known) if "timeout" in spec else 60.0
            timeout = (wait_for or 60.0) + WAIT_GRACE
    elif kind == "sleep":
        seconds = c.seconds(spec, where, maximum=MAX_SLEEP, known=known)
        timeout = (seconds or MAX_SLEEP) + 10.0
    elif kind == "shell":
        if c.string(spec, where):
            _vars_in(c, spec, where, known, shell=True)

    if "name" in raw and c.string(raw["name"], path + ("name",)):
        _vars_in(c, raw["name"], path + ("name",), known | set(raw.get("capture") or {}))
    if "description" in raw:
        c.string(raw["description"], path + ("description",), empty=True)
    for key in ("continue_on_failure", "yes"):
        if key in raw:
            c.boolean(raw[key], path + (key,))
    if raw.get("yes") is True and kind not in ("run", "assert"):
        c.error(path + ("yes",), f"only run and assert steps take yes (a {kind} step asks nothing)")
    if "continue_on_failure" in raw and phase == "rollback":
        c.error(path + ("continue_on_failure",), "every rollback always runs; continue_on_failure does not apply")
    if "continue_on_failure" in raw and phase == "hypothesis":
        c.error(path + ("continue_on_failure",), "a probe that fails means the hypothesis is not met; "
                                                 "continue_on_failure does not apply")
    if "timeout" in raw:
        given = c.seconds(raw["timeout"], path + ("timeout",))
        timeout = given or timeout
    expect = [0]
    if "expect_exit" in raw:
        if kind not in ("run", "shell", "assert"):
            c.error(path + ("expect_exit",), f"a {kind} step has no exit code to expect")
        value = raw["expect_exit"]
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in values):
            c.error(path + ("expect_exit",), "must be an exit code 0-255 or a list of them")
        else:
            expect = list(values)
    capture: dict[str, str] = {}
    if "capture" in raw:
        if kind not in ("run", "assert"):
            c.error(path + ("capture",), "only run and assert steps capture output")
        elif not isinstance(raw["capture"], dict) or not raw["capture"]:
            c.error(path + ("capture",), "must map variable names to paths, e.g. {job: id}")
        else:
            from .expr import ExprError, parse_path

            for var, expr_path in raw["capture"].items():
                if not isinstance(var, str) or not NAME.match(var):
                    c.error(path + ("capture", var), "a variable name is letters, digits and _", at_key=True)
                    continue
                if not isinstance(expr_path, str):
                    c.error(path + ("capture", var), f"must be a path like items[0].id, got {_type(expr_path)}")
                    continue
                try:
                    parse_path(expr_path)
                except ExprError as exc:
                    c.error(path + ("capture", var), str(exc))
                    continue
                capture[var] = expr_path
            if kind == "run" and any(a in ("-o", "--output") or a.startswith(("-o", "--output=")) for a in args):
                c.error(path + ("capture",), "capture reads the JSON output the runner asks for; drop -o from run")
    known.update(capture)
    if len(c.errors) > ok_before:
        return None
    name = raw.get("name") or _default_name(kind, spec, args)
    return Step(phase=phase, index=index, name=str(name), type=kind, spec=spec, line=c.line(path), timeout=timeout,
                continue_on_failure=bool(raw.get("continue_on_failure", False)), yes=bool(raw.get("yes", False)),
                expect_exit=expect, capture=capture)


def _check_wait_target(c: _Checker, spec: dict[str, Any], where: tuple[Any, ...]) -> None:
    """What `pipelinectl wait` would refuse with exit 2, refused here with the line instead."""
    from pipelinectl.cli.wait import parse_condition, wait_target

    try:
        subject = parse_condition(VAR.sub("0", str(spec.get("for", "")))).subject
    except UsageError:
        return  # already reported
    target = spec.get("target")
    if subject == "dlq":
        if target is not None:
            c.error(where + ("target",), "a dlq condition takes no target; use stage and error_kind")
        return
    stage_names_target = subject == "stage" and "stage" in spec  # like `wait --for state=paused --stage charge`
    if target is None and not stage_names_target:
        c.error(where, f"missing required field 'target' (the {subject} a {subject} condition is about)")
    elif isinstance(target, str):
        try:
            named = wait_target(target, subject)
        except UsageError as exc:
            c.error(where + ("target",), exc.message)
        else:
            if stage_names_target and named != spec["stage"]:
                c.error(where + ("stage",), f"stage given twice: target '{target}' and stage '{spec['stage']}'")
    for key in ("stage", "error_kind"):
        if key in spec and not (key == "stage" and stage_names_target):
            c.error(where + (key,), f"{key} goes with dlq conditions only")


def _check_args(c: _Checker, args: list[str], path: tuple[Any, ...], phase: str, raw: dict[str, Any],
                kind: str) -> None:
    if not args:
        c.error(path, "empty command")
        return
    if args[0] == "pipelinectl":
        c.error(path, "name the verb only (e.g. 'pause charge'); the runner runs pipelinectl itself")
        return
    if args[0] not in VERBS:
        c.error(path, f"'{args[0]}' is not a verb a drill may run (choose from {', '.join(VERBS)}); "
                      "use a shell step for anything else")
        return
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in RESERVED_FLAGS:
            hint = "write 'yes: true' on the step" if flag in ("--yes", "-y") else \
                "a drill runs against the context given to 'drill run' (and --confirm-context given to it)"
            c.error(path, f"'{flag}' is not allowed in a drill step: {hint}")
        if kind == "assert" and (flag in ("-o", "--output") or (arg.startswith("-o") and len(arg) > 2
                                                                and not arg.startswith("--"))):
            c.error(path, "an assert step gets -o json from the runner; drop -o")
    words = verb_words(args)
    if phase == "hypothesis" and words not in READ_ONLY:
        c.error(path, f"a probe only reads: '{' '.join(words)}' changes the plane (move it to method)")
    if needs_yes(args) and raw.get("yes") is not True:
        c.error(path, f"'{' '.join(words)}' asks for confirmation: add 'yes: true' to this step "
                      "(a drill never waits on a prompt)")


def _default_name(kind: str, spec: Any, args: list[str]) -> str:
    if kind == "run":
        return " ".join(args)
    if kind == "assert":
        that = spec.get("that")
        return f"{' '.join(split_args(spec['run']))}: " + "; ".join(that if isinstance(that, list) else [that])
    if kind == "wait":
        target = spec.get("target")
        return f"wait {target + ' ' if target else ''}for {spec['for']}"
    if kind == "sleep":
        return f"sleep {spec}"
    return str(spec).strip().splitlines()[0][:80]


def substitute(value: Any, variables: dict[str, str], *, shell: bool = False) -> Any:
    """Replace `${name}` in strings (lists and mappings too), as is; shell steps keep unknown `${X}` for the shell."""
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            inner = match.group(1)
            parts = ARITH.match(inner)
            name = parts.group(1) if parts else inner
            if parts and name in variables:
                if not parts.group(2):
                    return variables[name]
                try:
                    number = int(variables[name])
                except ValueError:
                    raise UsageError(f"'${{{inner}}}': {name} is '{variables[name]}', not a whole number") from None
                delta = int(parts.group(3))
                return str(number + delta if parts.group(2) == "+" else number - delta)
            if shell:
                return match.group(0)
            raise UsageError(f"variable '${{{name}}}' has no value (was its capture step skipped?)")

        return VAR.sub(repl, value)
    if isinstance(value, list):
        return [substitute(v, variables, shell=shell) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables, shell=shell) for k, v in value.items()}
    return value
