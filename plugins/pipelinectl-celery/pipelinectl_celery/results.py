"""Failed tasks in the Redis result backend: the dead letters of a Celery app, and how a redrive is sent.

The convention an application opts into (README.md, docs/plugins/celery.md):
- a Redis result backend with JSON results (`result_serializer="json"`, Celery's default);
- `result_extended=True`, so each record keeps the task's name, args, kwargs, worker and queue
  (the routing key it was delivered with, which is the queue name in Celery's default routing).

A failure record is the key `celery-task-meta-<task id>` whose JSON has `"status": "FAILURE"`.
Its id in pipelinectl is the task id; its stage is its queue; its error kind is the exception's
class mapped by `ErrorKinds`. Records expire with Celery's `result_expires` (1 day by default).

A redrive sends a new task with the original's name, args and kwargs to the original's queue. Its
task id is derived from the record (uuid5 of task id and completion time), and it carries the
header `pipelinectl_redrive_of`. The publish (an LPUSH onto the queue's list, in the message
format kombu's Redis transport writes) and a marker `pipelinectl:celery:redriven:<task id>:<date_done>`
are written by one Lua script on the broker (PUBLISH_ONCE: atomic in Redis), which does nothing
when the marker exists. The failure record is deleted only after that; a redrive that finds the
marker (the process died between the two, or another operator redrove it) deletes the record
without sending again. A task is never sent twice for one failure.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipelinectl.plugin_api import ERROR_KINDS, UsageError, parse_time

META_PREFIX = "celery-task-meta-"
FAILURE = "FAILURE"
MARKER_PREFIX = "pipelinectl:celery:redriven:"
MARKER_TTL = 30 * 24 * 3600  # seconds: far longer than any result_expires worth redriving from
REDRIVE_HEADER = "pipelinectl_redrive_of"
REDRIVE_NAMESPACE = uuid.UUID("6f1f4f0e-8a4b-4c7e-9a57-0c4f5e2b7d11")
# KEYS: marker, queue; ARGV: message, redrive task id, marker TTL. 1 = sent now, 0 = sent before.
PUBLISH_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
UNKNOWN_QUEUE = "-"  # stage of a record that does not say its queue (result_extended off)

# exception class -> error kind, unless the context's `error_kinds` setting says otherwise
DEFAULT_KINDS: dict[str, str] = {
    **dict.fromkeys(("ValueError", "TypeError", "KeyError", "ValidationError", "NotRegistered",
                     "UnicodeDecodeError", "JSONDecodeError"), "validation"),
    **dict.fromkeys(("TimeoutError", "ConnectionError", "ConnectionRefusedError", "ConnectionResetError",
                     "OSError", "TimeLimitExceeded", "SoftTimeLimitExceeded", "WorkerLostError",
                     "OperationalError", "Retry"), "transient"),
    **dict.fromkeys(("Reject", "Ignore", "WorkerTerminate", "Terminated", "TaskRevokedError"), "fatal"),
}
DEFAULT_KIND = "persistent"


class ErrorKinds:
    """Which error kind an exception class is: the defaults, overridden by `error_kinds=Exc=kind,...`."""

    def __init__(self, setting: Any = None) -> None:
        self.table = dict(DEFAULT_KINDS)
        if isinstance(setting, dict):
            pairs = [(str(k), str(v)) for k, v in setting.items()]
        else:
            pairs = []
            for part in str(setting or "").split(","):
                if not part.strip():
                    continue
                name, sep, kind = part.partition("=")
                if not sep or not name.strip():
                    raise UsageError(f"setting error_kinds='{setting}' is not EXCEPTION=KIND[,EXCEPTION=KIND...]")
                pairs.append((name.strip(), kind.strip()))
        for name, kind in pairs:
            if kind not in ERROR_KINDS:
                raise UsageError(f"setting error_kinds: '{kind}' is not an error kind",
                                 hint=f"choose from {', '.join(ERROR_KINDS)}")
            self.table[name] = kind

    def of(self, exc_type: str | None) -> str:
        return self.table.get(exc_type or "", DEFAULT_KIND)


@dataclass
class Failure:
    """One failure record of the result backend, decoded."""

    task_id: str
    key: str
    meta: dict[str, Any]

    @property
    def name(self) -> str | None:
        return self.meta.get("name")

    @property
    def queue(self) -> str:
        return self.meta.get("queue") or UNKNOWN_QUEUE

    @property
    def date_done(self) -> str:
        return str(self.meta.get("date_done") or "")

    @property
    def time(self) -> datetime | None:
        try:
            return parse_time(self.meta["date_done"]) if self.meta.get("date_done") else None
        except (TypeError, ValueError):
            return None

    @property
    def exc_type(self) -> str:
        result = self.meta.get("result")
        if isinstance(result, dict) and result.get("exc_type"):
            return str(result["exc_type"])
        return "Exception"

    @property
    def exc_module(self) -> str | None:
        result = self.meta.get("result")
        return result.get("exc_module") if isinstance(result, dict) else None

    @property
    def exc_message(self) -> str:
        result = self.meta.get("result")
        if isinstance(result, dict):
            message = result.get("exc_message")
            if isinstance(message, (list, tuple)):
                return ", ".join(str(m) for m in message)
            return "" if message is None else str(message)
        return "" if result is None else str(result)

    @property
    def extended(self) -> bool:
        """Does the record keep what a redrive needs (result_extended=True)?"""
        return bool(self.name) and "args" in self.meta and "kwargs" in self.meta

    @property
    def marker(self) -> str:
        return f"{MARKER_PREFIX}{self.task_id}:{self.date_done}"

    @property
    def redrive_id(self) -> str:
        """The task id of this failure's redrive: the same every time, so it names one redrive only."""
        return str(uuid.uuid5(REDRIVE_NAMESPACE, f"{self.task_id}/{self.date_done}"))

    def describe(self) -> str:
        text = f"{self.exc_type}: {self.exc_message}" if self.exc_message else self.exc_type
        return f"{self.name}: {text}" if self.name else text


def readable(raw: bytes | str | None) -> bool:
    """A JSON record (or none): anything else (pickle, msgpack) is never decoded, only counted."""
    if raw is None:
        return True
    head = raw.lstrip()[:1]
    return head in (b"{", "{")


def parse(key: str, raw: bytes | str | None, prefix: str) -> Failure | None:
    """A failure record from its key and value; None for a success, another state, or a non-JSON value."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        if not raw.startswith(b"{") or b'"FAILURE"' not in raw:
            return None
        raw = raw.decode("utf-8", "replace")
    try:
        meta = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(meta, dict) or meta.get("status") != FAILURE:
        return None
    task_id = str(meta.get("task_id") or key[len(prefix) + len(META_PREFIX):])
    return Failure(task_id=task_id, key=key, meta=meta)


def redrive_message(app: Any, channel: Any, failure: Failure) -> bytes:
    """The broker message of this failure's redrive, as kombu's Redis transport writes it onto a queue.

    Celery builds the task message (protocol 2, JSON); kombu's channel shapes and encodes it;
    only the final LPUSH is ours (see the module docstring for why).
    """
    from kombu.serialization import dumps
    from kombu.utils.json import dumps as json_dumps

    task = app.amqp.create_task_message(failure.redrive_id, failure.name, list(failure.meta.get("args") or []),
                                        dict(failure.meta.get("kwargs") or {}))
    headers = dict(task.headers)
    headers[REDRIVE_HEADER] = failure.task_id
    content_type, content_encoding, body = dumps(task.body, serializer="json")
    properties = {**task.properties, "delivery_mode": 2}
    message = channel.prepare_message(body, 0, content_type, content_encoding, headers, properties)
    message["body"], body_encoding = channel.encode_body(message["body"], channel.body_encoding)
    message["properties"].update(body_encoding=body_encoding, delivery_tag=str(uuid.uuid4()))
    message["properties"]["delivery_info"].update(exchange="", routing_key=failure.queue)
    return json_dumps(message).encode()
