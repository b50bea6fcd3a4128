"""Page actions: pause, resume, drain, scale, limit, disable, enable, DLQ redrive, saga retry,
force-fail, cancel and advance.

Each runs through the CLI verb's own flow (pipelinectl.cli.stage.change_stage,
cli.dlq.plan_bulk/apply_bulk, cli.saga.retry_saga/force_fail_saga/cancel_saga/advance_saga): the same
validation, idempotency key, audit line, and the plane's own role check. An
action has two steps, both POSTs that the app lets through only with writes on
and a valid CSRF token:

1. plan: the flow's dry run on the plane; the page shows what the plane says it
   would do, naming the context, and asks.
2. apply: only after the operator confirms in the page, the flow runs for real,
   with `yes=True` (the page was the confirmation). On a protected context the
   page asks for the context's name to be typed, as the CLI does.

A bulk redrive applies exactly the plan that was confirmed (kept here under a
random id for PLAN_SECONDS), so items that arrived meanwhile are never touched.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelinectl.errors import UsageError

if TYPE_CHECKING:
    from pipelinectl.cli.dlq import BulkPlan
    from pipelinectl.cli.session import Session

    from .planes import Plane

STAGE_VERBS = ("pause", "resume", "drain", "scale", "limit", "disable", "enable")
SAGA_ACTIONS = ("saga-retry", "saga-force-fail", "saga-cancel", "saga-advance")
ACTIONS = (*STAGE_VERBS, "dlq-redrive", *SAGA_ACTIONS)
PLAN_SECONDS = 300.0
SHOWN_IDS = 10


@dataclass
class Confirmation:
    """The page's question, the plane's dry-run answer, and what the confirm button sends back."""

    title: str  # the button: "Pause", "Redrive 12 items"
    question: str  # names the target and the context
    answer: str  # what the plane's dry run says
    fields: dict[str, str]
    details: list[str] = field(default_factory=list)
    nothing_to_do: bool = False  # no confirm button: the plan is empty
    protected: bool = False  # the context is protected: the page asks for its name


@dataclass
class Outcome:
    message: str  # the same line the CLI prints
    details: list[str] = field(default_factory=list)
    failed: bool = False  # the plane refused some of it


class Plans:
    """Bulk plans awaiting the page's confirmation: single use, short lived."""

    def __init__(self) -> None:
        self._plans: dict[str, tuple[str, float, BulkPlan]] = {}
        self._lock = threading.Lock()

    def keep(self, plane: str, plan: BulkPlan) -> str:
        plan_id = secrets.token_urlsafe(12)
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (_, at, _) in self._plans.items() if now - at > PLAN_SECONDS]:
                del self._plans[key]
            self._plans[plan_id] = (plane, now, plan)
        return plan_id

    def take(self, plane: str, plan_id: str) -> BulkPlan:
        with self._lock:
            entry = self._plans.pop(plan_id, None)
        if entry is None or entry[0] != plane or time.monotonic() - entry[1] > PLAN_SECONDS:
            raise UsageError("this confirmation has expired or was used already; nothing was changed",
                             hint="ask again")
        return entry[2]


def _text(form: dict[str, Any], key: str) -> str | None:
    value = form.get(key)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _required(form: dict[str, Any], key: str) -> str:
    value = _text(form, key)
    if value is None:
        raise UsageError(f"missing '{key}'")
    return value


def _int(form: dict[str, Any], key: str, what: str) -> int | None:
    value = _text(form, key)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{what} must be a whole number, got '{value}'") from None


def _where(plane: Plane, pipeline: str) -> str:
    return f"of pipeline '{pipeline}' on context '{plane.name}'"


# -- plan -------------------------------------------------------------------------------------------------
def plan(plane: Plane, plans: Plans, form: dict[str, Any]) -> Confirmation:
    """Step 1: validate and dry-run through the verb's flow; nothing changes."""
    action = _required(form, "action")
    pipeline = _required(form, "p")
    if action in STAGE_VERBS:
        confirmation = plane.call(lambda s: _plan_stage(s, plane, action, pipeline, form))
    elif action == "dlq-redrive":
        confirmation = plane.call(lambda s: _plan_redrive(s, plane, plans, pipeline, form))
    elif action in SAGA_ACTIONS:
        confirmation = plane.call(lambda s: _plan_saga(s, plane, action, pipeline, form))
    else:
        raise UsageError(f"unknown action '{action}'", hint=f"choose from {', '.join(ACTIONS)}")
    confirmation.protected = plane.session.context.protected
    return confirmation


def _knobs(verb: str, form: dict[str, Any]) -> dict[str, Any]:
    """The options of `limit` (rate, burst, or clear) and `disable` (reason) as the page sent them;
    change_stage checks them (the rate by pipelinectl.rates) before anything is read or sent."""
    if verb == "limit":
        if _text(form, "clear") is not None:
            return {"clear": True}
        return {"rate": _text(form, "rate"), "burst": _int(form, "burst", "burst")}
    if verb == "disable":
        return {"reason": _text(form, "reason")}
    return {}


def _plan_stage(session: Session, plane: Plane, verb: str, pipeline: str, form: dict[str, Any]) -> Confirmation:
    from pipelinectl.cli.stage import change_stage

    stage = _required(form, "stage")
    parallelism = _int(form, "parallelism", "parallelism") if verb == "scale" else None
    knobs = _knobs(verb, form)
    change = change_stage(session, verb, stage, pipeline=pipeline, parallelism=parallelism, dry_run=True, **knobs)
    fields = {"action": verb, "p": pipeline, "stage": change.stage}
    what = f"{verb} stage '{change.stage}'"
    title = verb.capitalize()
    if change.before is not None:  # what the operator confirmed: a change made meanwhile is a conflict
        fields["version"] = str(change.before.version)
    if verb == "scale":
        fields["parallelism"] = str(parallelism)
        what += f" to parallelism {parallelism}"
    elif verb == "limit" and knobs.get("clear"):
        fields["clear"] = "1"
        what, title = f"clear the rate limit of stage '{change.stage}'", "Clear limit"
    elif verb == "limit":  # the rate and burst as the plane will apply them (a default burst made explicit)
        limit = change.after.rate_limit
        rate, burst = (limit.rate, limit.burst) if limit is not None else (knobs["rate"], knobs["burst"])
        fields["rate"] = str(rate)
        if burst is not None:
            fields["burst"] = str(burst)
        what += f" to {rate}" + (f" (burst {burst})" if burst is not None else "")
    elif verb == "disable":
        fields["reason"] = knobs["reason"]
    answer = f"The plane says it would leave it {change.summary}."
    if verb == "disable":
        answer += " Items then flow past it unprocessed, each recorded for 'pipelinectl replay --skipped'."
    return Confirmation(title=title, question=f"{what} {_where(plane, pipeline)}?", answer=answer, fields=fields)


def _plan_redrive(session: Session, plane: Plane, plans: Plans, pipeline: str, form: dict[str, Any]) -> Confirmation:
    from pipelinectl.cli.common import plural
    from pipelinectl.cli.dlq import plan_bulk

    ids = [i for i in str(form.get("ids") or "").split() if i]
    filters = {k: _text(form, k) for k in ("stage", "error_kind", "since", "until")}
    all_ = not ids and not any(filters.values())
    bulk = plan_bulk(session, "redrive", ids, all_=all_, pipeline=pipeline, **filters)
    if bulk.count == 0:
        return Confirmation(title="Redrive", question=f"Redrive {bulk.what} {_where(plane, pipeline)}?",
                            answer=f"No DLQ items match ({bulk.what}); nothing to redrive.", fields={},
                            nothing_to_do=True)
    shown = bulk.plan.matched[:SHOWN_IDS]
    details = list(shown) + ([f"… and {bulk.count - len(shown)} more"] if bulk.count > len(shown) else [])
    count = plural(bulk.count, "DLQ item")
    return Confirmation(
        title=f"Redrive {count}",
        question=f"Redrive {count} {_where(plane, pipeline)} ({bulk.what})?",
        answer=f"The plane would put {count} back into {'its stage' if bulk.count == 1 else 'their stages'}; "
               "each leaves the DLQ only once accepted. Items arriving after this plan are not touched.",
        fields={"action": "dlq-redrive", "p": pipeline, "plan": plans.keep(plane.name, bulk)},
        details=details)


def _saga_change(session: Session, action: str, pipeline: str, form: dict[str, Any], *, dry_run: bool) -> Any:
    """The saga verb's flow for a page action; advance's --result is JSON, checked before anything is read."""
    from pipelinectl.cli.saga import advance_saga, cancel_saga, force_fail_saga, parse_result, retry_saga

    saga_id = _required(form, "id")
    reason = _text(form, "reason")
    if action == "saga-retry":
        return retry_saga(session, saga_id, reason, pipeline=pipeline, dry_run=dry_run)
    if action == "saga-force-fail":
        return force_fail_saga(session, saga_id, reason, pipeline=pipeline, dry_run=dry_run, yes=True)
    if action == "saga-cancel":
        return cancel_saga(session, saga_id, reason, pipeline=pipeline, dry_run=dry_run, yes=True)
    result = parse_result(_text(form, "result"))
    return advance_saga(session, saga_id, _text(form, "step"), reason, result=result, pipeline=pipeline,
                        dry_run=dry_run, yes=True)


def _plan_saga(session: Session, plane: Plane, action: str, pipeline: str, form: dict[str, Any]) -> Confirmation:
    from pipelinectl.cli.saga import describe_saga, would_happen

    change = _saga_change(session, action, pipeline, form, dry_run=True)
    verb = action.removeprefix("saga-")
    fields = {"action": action, "p": pipeline, "id": change.before.id}
    for key in ("reason", "step", "result"):
        if _text(form, key) is not None:
            fields[key] = str(_text(form, key))
    question = f"{verb.capitalize()} {describe_saga(change.before)} {_where(plane, pipeline)}?"
    if action == "saga-advance":
        question = (f"Advance {describe_saga(change.before)} {_where(plane, pipeline)}, recording step "
                    f"'{fields['step']}' as done by hand?")
    if action in ("saga-retry", "saga-force-fail"):
        answer = f"The plane says it would leave it {change.after.status}."
    else:
        answer = f"The plane says it {would_happen(change.before, change.after)}."
    details = [f"result: {fields['result']}"] if "result" in fields else []
    return Confirmation(title=verb.capitalize(), question=question, answer=answer, fields=fields, details=details)


# -- apply ------------------------------------------------------------------------------------------------
def apply(plane: Plane, plans: Plans, form: dict[str, Any]) -> Outcome:
    """Step 2, after the page's confirmation: the verb's flow for real (validation again, audit, the plane's answer)."""
    action = _required(form, "action")
    pipeline = _required(form, "p")
    typed = _confirmed_name(plane, form)
    if action in STAGE_VERBS:
        return plane.call(lambda s: _confirmed(s, typed, lambda: _apply_stage(s, action, pipeline, form)))
    if action == "dlq-redrive":
        bulk = plans.take(plane.name, _required(form, "plan"))
        return plane.call(lambda s: _confirmed(s, typed, lambda: _apply_redrive(s, plane, bulk)))
    if action in SAGA_ACTIONS:
        return plane.call(lambda s: _confirmed(s, typed, lambda: _apply_saga(s, plane, action, pipeline, form)))
    raise UsageError(f"unknown action '{action}'", hint=f"choose from {', '.join(ACTIONS)}")


def _confirmed_name(plane: Plane, form: dict[str, Any]) -> str | None:
    """On a protected context, the name the operator typed into the page must be the context's."""
    if not plane.session.context.protected:
        return None
    typed = _text(form, "confirm_context")
    if typed != plane.name:
        raise UsageError(f"context '{plane.name}' is protected: type its name to confirm; nothing was changed")
    return typed


def _confirmed(session: Session, typed: str | None, run: Any) -> Any:
    with session.confirming(typed):
        return run()


def _apply_stage(session: Session, verb: str, pipeline: str, form: dict[str, Any]) -> Outcome:
    from pipelinectl.cli.common import plural
    from pipelinectl.cli.stage import change_stage

    change = change_stage(session, verb, _required(form, "stage"), pipeline=pipeline,
                          parallelism=_int(form, "parallelism", "parallelism") if verb == "scale" else None,
                          expected_version=_int(form, "version", "version"),
                          **_knobs(verb, form))
    details = []
    if verb == "drain":
        details.append(f"'{change.stage}' stays paused once drained and the stages before it back up; "
                       "resume it when done")
    elif verb == "disable":
        details.append(f"items now flow past '{change.stage}' unprocessed, each recorded; after enabling it, "
                       f"process them with 'pipelinectl replay --skipped {change.stage}'")
    elif verb == "enable" and change.after.bypassed:
        details.append(f"{plural(change.after.bypassed, 'item')} went past '{change.stage}' unprocessed while it "
                       f"was disabled; process them with 'pipelinectl replay --skipped {change.stage}'")
    return Outcome(f"stage {change.target}: {change.summary}", details)


def _apply_redrive(session: Session, plane: Plane, bulk: BulkPlan) -> Outcome:
    from pipelinectl.cli.common import plural
    from pipelinectl.cli.dlq import apply_bulk

    result = apply_bulk(session, bulk, yes=True, always_confirm=False).result
    details = [f"{item_id}: {session.redact(reason)}" for item_id, reason in sorted(result.failed.items())]
    message = (f"{plural(len(result.succeeded), 'item')} redriven from pipeline '{bulk.pipeline}' "
               f"(context '{plane.name}')")
    if result.failed:
        message += f"; {plural(len(result.failed), 'item')} could not be redriven and stay in the DLQ"
    return Outcome(message, details, failed=bool(result.failed))


def _apply_saga(session: Session, plane: Plane, action: str, pipeline: str, form: dict[str, Any]) -> Outcome:
    change = _saga_change(session, action, pipeline, form, dry_run=False)
    return Outcome(f"saga {change.before.id}: {change.after.status} (was {change.before.status}; "
                   f"context '{plane.name}')")
