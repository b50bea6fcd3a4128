"""Plans: a mutation worked out ahead (`VERB ... --dry-run -o yaml`), reviewed, then applied exactly.

A plan names the action (verb and arguments), its target (context, driver, pipeline and what is
acted on), the preconditions it relied on (read from the plane when it was made) and what the plane
said would happen, sealed by a sha256 hash over all of that. `pipelinectl apply` checks the hash,
the context, and every precondition read again from the plane, then runs the verb's own flow
(validation, confirmation, audit line) on exactly that target, with Idempotency-Keys derived from
the hash (the http driver), so applying one plan twice cannot act twice. docs/plans.md is the
operator's guide; docs/output.md and the output schema define the document.

Each mutating verb registers one builder beside itself, and apply dispatches on the plan's verb:

    @plans.builder("scale")
    def plan_scale(session, verb, target, arguments) -> plans.Draft: ...

A builder runs the verb's flow as a dry run (it never mutates) from either the command line's
request or a plan's own `target`/`action.arguments`, which it must accept back as they are. It
returns a Draft: the target and arguments in that normal form, the preconditions, the plane's
answer, and `perform(yes)`, the real run as the verb does it (prompts, output and all).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from pipelinectl.cli.common import current, dry_run_note, yes_option
from pipelinectl.errors import ConflictError, NotFoundError, UsageError

if TYPE_CHECKING:
    from pipelinectl.cli.session import Session

FORMAT = 1  # the plan document's format; a plan of another format is refused, never guessed at
MACHINE = ("json", "yaml", "jsonl")  # `--dry-run` in these prints the plan


@dataclass
class Precondition:
    """A fact the plan relies on: `object` as -o name prints it (`stage/charge`), and its expected fields."""

    object: str
    expect: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "expect": dict(self.expect)}


@dataclass
class Draft:
    """What a verb's builder returns: the plan's parts, and how to perform it for real."""

    target: dict[str, Any]  # pipeline and stage | saga | items | query (context and driver are added here)
    arguments: dict[str, Any]  # JSON values only: times as RFC 3339 text
    preconditions: list[Precondition]
    summary: str  # what the plane says would happen, one line
    result: Any  # the plane's dry-run answer (a model Resource), or None
    perform: Callable[[bool], None]  # perform(yes): the verb's real run, printing what the verb prints


Builder = Callable[["Session", str, dict[str, Any], dict[str, Any]], Draft]
_BUILDERS: dict[str, Builder] = {}


def builder(*verbs: str) -> Callable[[Builder], Builder]:
    """Register the plan builder of one or more verbs (`"scale"`, `"dlq redrive"`)."""

    def register(fn: Builder) -> Builder:
        for verb in verbs:
            _BUILDERS[verb] = fn
        return fn

    return register


def builder_for(verb: str) -> Builder:
    """The builder of `verb`, importing the module of its command (as the command table names it) first."""
    if verb not in _BUILDERS and isinstance(verb, str) and verb.split():
        _import_command(verb.split()[0])
    found = _BUILDERS.get(verb)
    if found is None:
        raise UsageError(f"this pipelinectl cannot apply a plan for '{verb}'",
                         hint="the verb is unknown here, or has no plans; is the plugin that adds it installed?")
    return found


def _import_command(name: str) -> None:
    import importlib

    from pipelinectl.cli.commands import COMMANDS

    spec = COMMANDS.get(name)
    if spec is not None:
        importlib.import_module(spec.target.partition(":")[0])
        return
    from pipelinectl.plugins import command_entries

    entry = command_entries().get(name)
    if entry is not None:
        entry.load()


# -- making a plan (a verb's --dry-run in machine output) ---------------------------------------------------
def wanted(session: Session, dry_run: bool) -> bool:
    """A dry run whose output is for a machine prints a plan (-o json|yaml|jsonl)."""
    return dry_run and session.options.output in MACHINE


def emit(session: Session, verb: str, *, target: dict[str, Any], arguments: dict[str, Any]) -> None:
    """The dry run of `verb` as a plan on stdout; the one-line note on stderr."""
    draft = builder_for(verb)(session, verb, target, arguments)
    plan = document(session, verb, draft)
    dry_run_note(session, f"{draft.summary}; plan {short(plan['hash'])}")
    session.emit(plan)


def document(session: Session, verb: str, draft: Draft) -> dict[str, Any]:
    """The plan as printed: every field but `hash` goes into the hash."""
    import getpass
    from datetime import UTC, datetime

    from pipelinectl.timeparse import format_time

    try:
        user = getpass.getuser()
    except Exception:
        user = None
    result = draft.result.to_dict() if hasattr(draft.result, "to_dict") else draft.result
    plan: dict[str, Any] = {
        "kind": "Plan",
        "format": FORMAT,
        "created_at": format_time(datetime.now(UTC), timespec="seconds"),
        "created_by": user,
        "action": {"verb": verb, "arguments": draft.arguments},
        "target": {"context": session.context_name, "driver": session.context.driver, **draft.target},
        "preconditions": [p.to_dict() for p in draft.preconditions],
        "outcome": {"summary": draft.summary, "result": result},
    }
    plan["hash"] = seal(plan)
    return plan


def seal(plan: dict[str, Any]) -> str:
    """sha256 over the canonical JSON (sorted keys, no spaces) of every field but `hash`."""
    body = {key: value for key, value in plan.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def short(digest: str) -> str:
    return digest[:19]  # "sha256:" and 12 hex digits: enough to tell plans apart in a line


# -- reading a plan back ------------------------------------------------------------------------------------
def load(text: str, source: str) -> dict[str, Any]:
    """A plan file's document, refused (exit 2) unless it is a plan whose hash matches its content."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise UsageError(f"{source} is not a plan: it is not valid YAML or JSON") from None
    except RecursionError:
        raise UsageError(f"{source} is not a plan: it is nested too deeply") from None
    make = "make one with 'pipelinectl VERB ... --dry-run -o yaml > plan.yaml'"
    if not isinstance(data, dict) or data.get("kind") != "Plan":
        raise UsageError(f"{source} is not a plan (a document of kind Plan)", hint=make)
    try:
        matches = isinstance(data.get("hash"), str) and seal(data) == data["hash"]
    except (TypeError, ValueError):  # a value JSON cannot hold (a YAML date typed in by hand)
        matches = False
    if not matches:
        raise UsageError(f"{source}: the plan's hash does not match its content, so it was changed after it was "
                         "made; nothing was changed", hint=f"review and {make}")
    if data.get("format") != FORMAT:
        raise UsageError(f"{source}: plan format {data.get('format')!r} is not one this pipelinectl reads "
                         f"(format {FORMAT})")
    action, target, preconditions = data.get("action"), data.get("target"), data.get("preconditions")
    shaped = (isinstance(action, dict) and isinstance(action.get("verb"), str)
              and isinstance(action.get("arguments"), dict) and isinstance(target, dict)
              and isinstance(target.get("context"), str) and isinstance(target.get("driver"), str)
              and isinstance(preconditions, list)
              and all(isinstance(p, dict) and isinstance(p.get("object"), str) and isinstance(p.get("expect"), dict)
                      for p in preconditions))
    if not shaped:
        raise UsageError(f"{source}: the plan lacks an action, a target or its preconditions", hint=make)
    return data


def check_context(session: Session, plan: dict[str, Any]) -> None:
    """A plan acts on the context it was made on, and --context must name it to use it from another."""
    made_on = plan["target"]["context"]
    here = session.context_name
    if here != made_on:
        raise UsageError(f"this plan was made on context '{made_on}', and the context in use is '{here}'; "
                         "nothing was changed", hint=f"to apply it where it was made, add --context {made_on}")
    driver = session.context.driver
    if driver != plan["target"]["driver"]:
        raise UsageError(f"context '{here}' uses driver '{driver}' now; the plan was made for driver "
                         f"'{plan['target']['driver']}'; nothing was changed")


def verify(session: Session, plan: dict[str, Any]) -> Draft:
    """Build the plan's action again from the plane as it is now; any precondition that changed is a conflict."""
    verb = plan["action"]["verb"]
    build = builder_for(verb)
    target = {k: v for k, v in plan["target"].items() if k not in ("context", "driver")}
    try:
        draft = build(session, verb, target, dict(plan["action"]["arguments"]))
    except (NotFoundError, ConflictError) as exc:  # what it acts on is gone, or no longer allows it
        raise ConflictError(f"the plan no longer holds: {exc.message}; nothing was changed", hint=_replan(plan),
                            request_id=exc.request_id) from None
    changed = differences(plan["preconditions"], draft.preconditions)
    if changed:
        raise ConflictError(f"the plan no longer holds: {'; '.join(changed)}; nothing was changed",
                            hint=_replan(plan))
    return draft


def _replan(plan: dict[str, Any]) -> str:
    """What to do about a stale plan; if this machine's audit log shows it applied, say when."""
    from pipelinectl.audit import applied

    entry = applied(plan["hash"])
    if entry is not None:
        return f"this plan was applied at {entry.get('time')} by {entry.get('user')} (audit log)"
    return "make a new plan from the current state (--dry-run -o yaml) and review it again"


def differences(planned: list[dict[str, Any]], now: list[Precondition]) -> list[str]:
    """Each expected field that reads differently now: 'stage charge is at version 7, the plan was made at 5'."""
    current = {p.object: p.expect for p in now}
    out = []
    for pre in planned:
        kind, _, name = pre["object"].partition("/")
        label = f"{kind} {name}".strip()
        fields = current.get(pre["object"])
        if fields is None:
            out.append(f"{label} is not there any more")
            continue
        for field, then in pre["expect"].items():
            value = fields.get(field)
            if value != then:
                out.append(f"{label} is at {field.replace('_', ' ')} {_show(value)}, the plan was made at {_show(then)}")
    return out


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


# -- pipelinectl apply ---------------------------------------------------------------------------------------
def apply(
    file: str | None = typer.Argument(None, metavar="FILE", show_default=False,
                                      help="The plan, YAML or JSON as --dry-run printed it; - reads standard input."),
    filename: str | None = typer.Option(None, "-f", "--filename", metavar="FILE",
                                        help="The plan file (as kubectl apply -f); - reads standard input."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Check the plan (hash, context, preconditions) against the plane; "
                                      "change nothing."),
    yes: bool = yes_option(),
) -> None:
    """Perform exactly a plan made earlier with 'VERB ... --dry-run -o yaml > plan.yaml'.

    The plan's hash must match its content (an edited plan is refused, exit 2), it
    must be applied on the context it was made on (--context NAME names it from
    another), and every precondition it recorded (stage versions, parallelism, item
    IDs, saga states, replay counts) is read from the plane again: if one changed,
    nothing is done (exit 4). Then the verb runs as it would from the command line:
    the same validation, confirmation (and --yes), and audit line, which records the
    plan's hash. Applying the same plan twice acts once. -f - reads the plan from
    standard input; --dry-run only checks it.

    Examples:

      pipelinectl apply scale-charge.yaml

      pipelinectl apply -f purge.yaml --context prod --confirm-context prod
    """
    from pipelinectl.plane import applying_plan

    session = current()
    source = _source(file, filename)
    plan = load(_read(source), "standard input" if source == "-" else source)
    check_context(session, plan)
    verb = plan["action"]["verb"]
    with applying_plan(plan["hash"]):
        draft = verify(session, plan)
        if dry_run:
            dry_run_note(session, f"plan {short(plan['hash'])} still holds: {draft.summary}")
            if session.options.output != "table":
                session.emit(plan)
            return
        session.info(f"applying plan {short(plan['hash'])}: {verb}, made {plan.get('created_at')} by "
                     f"{plan.get('created_by') or 'unknown'}")
        session.plan_check = lambda: verify(session, plan)  # once more, just before the mutation is sent
        draft.perform(yes)


def _source(file: str | None, filename: str | None) -> str:
    if file is not None and filename is not None:
        raise UsageError("give the plan once: FILE or -f FILE, not both")
    source = file if file is not None else filename
    if source is None:
        raise UsageError("apply needs a plan: pipelinectl apply FILE (or -f - to read standard input)",
                         hint="make one with 'pipelinectl VERB ... --dry-run -o yaml > plan.yaml'")
    return source


def _read(source: str) -> str:
    if source == "-":
        text = sys.stdin.read()
        if not text.strip():
            raise UsageError("no plan on standard input (it was empty); nothing was changed")
        return text
    from pathlib import Path

    try:
        return Path(source).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"plan file not found: {source}") from None
    except OSError as exc:
        raise UsageError(f"cannot read plan file {source}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"plan file {source} is not UTF-8 text") from None
