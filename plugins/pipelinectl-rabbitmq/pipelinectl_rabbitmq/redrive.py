"""dlq redrive: each letter back to its original queue, publish and ack in one AMQP transaction.

Why a transaction rather than publisher confirms: with confirms, a process killed between the
confirm and the ack leaves the letter in the DLQ although its copy is already in the target,
and the next redrive publishes it twice. In a transaction the publish and the ack are one
commit: killed before it, RabbitMQ discards the publish and requeues the letter in place;
after it, both happened. `tx.commit-ok` also means the broker has taken the copy (written to
disk for a persistent message in a durable queue), which is what a confirm would say.

What a transaction does not cover, and how it is handled:
- an unroutable publish (the target queue deleted): RabbitMQ returns the message but still
  commits the ack. So each batch first checks its targets exist, just before the commit, and a
  message returned anyway is put back into its DLQ (publisher-confirmed) and reported;
- a target with a length limit: it may drop a transactional publish without telling, so such
  targets are refused (the letter stays).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelinectl.plugin_api import BulkResult, DLQFilter, PipelinectlError, UnavailableError

from . import dlq
from .client import close_channel

if TYPE_CHECKING:
    from .driver import RabbitControlPlane

REDRIVE_HEADER = "x-pipelinectl-redrive-of"
LENGTH_LIMITS = ("x-max-length", "x-max-length-bytes", "max-length", "max-length-bytes")


class Redrive:
    def __init__(self, plane: RabbitControlPlane, vhost: str, selection: DLQFilter, result: BulkResult,
                 dry_run: bool) -> None:
        self.plane = plane
        self.amqp = plane.amqp
        self.vhost = vhost
        self.selection = selection
        self.result = result
        self.dry_run = dry_run
        self.targets: dict[str, str | None] = {}  # queue -> why it cannot take redriven messages (None: it can)
        self.stopped = False

    def run(self) -> None:
        for queue, _info in self.plane._dlq_targets(self.vhost, self.selection.stage):
            self._redrive_from(queue)
            if self.stopped:
                break

    # -- targets -------------------------------------------------------------------------
    def _problem(self, letter: dlq.Letter) -> str | None:
        target = letter.original_queue
        if not target:
            return "no x-death headers: its original queue is unknown; item kept"
        if target not in self.targets:
            from .client import seg

            info = self.plane.api.maybe(f"/api/queues/{seg(self.vhost)}/{seg(target)}")
            if info is None:
                why: str | None = f"its original queue '{target}' does not exist any more; item kept"
            else:
                args = {**(info.get("effective_policy_definition") or {}), **(info.get("arguments") or {})}
                limits = [k for k in LENGTH_LIMITS if args.get(k) is not None]
                why = (f"the original queue '{target}' has a length limit ({', '.join(limits)}): RabbitMQ may drop a "
                       "message published in a transaction without telling, so it is not redriven; item kept"
                       if limits else None)
            self.targets[target] = why
        return self.targets[target]

    # -- one DLQ -------------------------------------------------------------------------
    def _redrive_from(self, queue: str) -> None:
        import pika

        peek = self.plane.peek(self.vhost, queue)
        channel = peek.channel
        returned: list[tuple[Any, Any, bytes]] = []
        channel.add_on_return_callback(lambda _ch, method, props, body: returned.append((method, props, body)))
        if not self.dry_run:
            self.amqp.call("starting a transaction", channel.tx_select, vhost=self.vhost)
        batch: list[dlq.Letter] = []
        wanted = set(self.selection.ids)
        try:
            for letter in peek.letters():
                if not self.plane._matches(letter, self.selection):
                    continue
                self.result.matched.append(letter.id)
                wanted.discard(letter.id)
                problem = self._problem(letter)
                if problem:
                    self.result.failed[letter.id] = problem
                elif not self.dry_run:
                    headers = {**letter.headers, REDRIVE_HEADER: f"{queue}:{letter.id}"}
                    props = pika.BasicProperties(**{**dlq.raw_properties(letter.properties), "headers": headers})
                    self.amqp.call(f"redriving {letter.id}", lambda le=letter, p=props: (
                        channel.basic_publish("", le.original_queue, le.body, p, mandatory=True),
                        channel.basic_ack(le.delivery_tag)), vhost=self.vhost)
                    batch.append(letter)
                    if len(batch) >= self.plane.redrive_batch:
                        peek.removed += self._commit(channel, queue, batch, returned)
                if self.selection.ids and not wanted:
                    break
            peek.removed += self._commit(channel, queue, batch, returned)
        except UnavailableError as exc:
            for letter in batch:
                self.result.failed[letter.id] = f"not redriven ({exc.message}); item kept in the DLQ"
            self.stopped = True
            self.amqp.drop(self.vhost)
        finally:
            peek.close()

    def _commit(self, channel: Any, queue: str, batch: list[dlq.Letter], returned: list[tuple[Any, Any, bytes]]) -> int:
        """Commit the batch; how many letters left the DLQ (acked, and not put back)."""
        if not batch:
            return 0
        missing = self._vanished({le.original_queue for le in batch if le.original_queue})
        if missing:
            self.amqp.call("rolling back", channel.tx_rollback, vhost=self.vhost)
            for letter in batch:
                self.result.failed[letter.id] = (f"not redriven: queue {', '.join(sorted(missing))} vanished during the "
                                                 "redrive; item kept in the DLQ")
            batch.clear()
            return 0
        try:
            channel.tx_commit()
            channel.connection.process_data_events(time_limit=0)  # returns come before commit-ok
        except Exception as exc:
            err = self._unknown(exc)
            for letter in batch:
                self.result.failed[letter.id] = err
            batch.clear()
            raise UnavailableError(err) from None
        back = {str((props.headers or {}).get(REDRIVE_HEADER, "")).partition(":")[2]: (props, body)
                for _method, props, body in returned}
        returned.clear()
        moved = 0
        for letter in batch:
            if letter.id in back:
                self.result.failed[letter.id] = self._put_back(queue, letter, *back[letter.id])
            else:
                self.result.succeeded.append(letter.id)
                moved += 1
        if self.plane.progress:
            self.plane.progress("redriving", len(self.result.succeeded), len(self.result.matched))
        batch.clear()
        return moved

    def _unknown(self, exc: BaseException) -> str:
        from .client import amqp_error

        reason = amqp_error(exc, "commit", vhost=self.vhost).message
        return (f"the connection failed during the commit ({reason}): these items were moved or kept, not both and "
                "not neither; run 'dlq list' to see which are still in the DLQ")

    def _vanished(self, targets: set[str]) -> set[str]:
        """The targets that no longer exist, checked on a channel of their own (a 404 closes a channel)."""
        import pika.exceptions

        gone = set()
        for target in targets:
            probe = self.amqp.channel(self.vhost)
            try:
                probe.queue_declare(target, passive=True)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == 404:
                    gone.add(target)
            finally:

                close_channel(probe)
        return gone

    def _put_back(self, queue: str, letter: dlq.Letter, props: Any, body: bytes) -> str:
        """A copy RabbitMQ returned after the commit acked its letter: publish it to the DLQ again."""
        channel = self.amqp.channel(self.vhost)
        try:
            channel.confirm_delivery()
            channel.basic_publish("", queue, body, props, mandatory=True)
            return "returned as unroutable after the commit; put back into the DLQ"
        except (PipelinectlError, Exception) as exc:
            return f"returned as unroutable after the commit, and putting it back failed: {exc}"
        finally:

            close_channel(channel)
