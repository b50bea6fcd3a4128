"""The Celery application the plugin's tests run in real `celery worker` processes.

Configured from the environment the tests set (broker, result backend, log file, fix file):
- `t.work(item, delay=0, fail=None)` sleeps `delay` seconds, then raises the builtin
  exception named by `fail` (ValueError, TimeoutError...) unless the fix file exists;
- every start and finish is one JSON line in the log file (worker, queue, task id, and
  the `pipelinectl_redrive_of` header of a redriven task), so tests count on the worker's side.

The app opts into the plugin's dead-letter convention: `result_extended=True` with JSON results.
"""

from __future__ import annotations

import builtins
import json
import os
import time

from celery import Celery, signals

app = Celery("pipelinectl-test", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
             backend=os.environ.get("CELERY_RESULT_BACKEND") or os.environ.get("CELERY_BROKER_URL"))
app.conf.update(
    result_extended=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=int(os.environ.get("TEST_PREFETCH", "1")),
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
)

LOG = os.environ.get("PIPELINECTL_TEST_LOG", "")
FIX_FILE = os.environ.get("PIPELINECTL_TEST_FIX", "")


def record(action: str, **fields) -> None:
    if not LOG:
        return
    line = json.dumps({"action": action, "pid": os.getpid(), "t": time.time(), **fields}) + "\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)  # one write per line: whole lines
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@app.task(name="t.work", bind=True)
def work(self, item, delay: float = 0.0, fail: str | None = None):
    request = self.request
    info = {
        "item": item, "task_id": request.id, "worker": request.hostname,
        "queue": (request.delivery_info or {}).get("routing_key"),
        "redrive_of": getattr(request, "pipelinectl_redrive_of", None),
    }
    record("start", **info)
    if delay:
        time.sleep(delay)
    if fail and not (FIX_FILE and os.path.exists(FIX_FILE)):
        record("fail", **info)
        raise getattr(builtins, fail)(f"boom {item}")
    record("done", **info)
    return item


@app.task(name="t.other")
def other():
    return "other"


@signals.worker_ready.connect
def _ready(sender=None, **_):
    record("ready", worker=sender.hostname if sender is not None else None)
