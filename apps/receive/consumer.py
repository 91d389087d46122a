"""Consuming with a prefetch window and manual acks sent after processing.

A message is acknowledged only after it was processed and, with ``record``,
its id written and flushed to the record file, so a consumer killed at any
moment loses nothing: what it had not acked is delivered again (to it after a
restart, or to another consumer). Acks are batched with ``multiple=True``:
one ack covers every processed delivery up to its tag, sent when
``ack_every`` deliveries are pending or when the current burst of deliveries
has been handled, whichever comes first.

A message whose processing fails is returned to the queue and retried; on
its ``max_deliveries``-th failed delivery it is rejected without requeue,
which dead-letters it to ``<queue>.dead`` (the broker policy in
apps.common.contract.broker says where). Each failed delivery is settled on
its own with ``basic.reject``, never ``basic.nack``: since RabbitMQ 4.3 only a
reject counts as a failed delivery in a quorum queue's ``x-delivery-count``
(a nack means "could not process it now"), so with nacks the count, and the
queue's delivery limit, would never move and a poison message would loop
forever. The delivery number comes from that header, which also counts
deliveries to consumers that crashed; classic queues do not have it, so
failures are counted here, per message id, for the life of the process.
Messages without a ``message_id`` cannot be tracked and go to the dead-letter
queue at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path

from apps.common.amqp_service import EXIT_OK, ReconnectingService
from apps.common.contract import telemetry
from apps.common.rabbitmq import POISON_HEADER

FAILURE_MEMORY = 10_000  # message ids whose failures are remembered (classic queues)


class ProcessingError(Exception):
    """Processing failed; a retry may succeed."""


class PermanentError(ProcessingError):
    """The message can never be processed: dead-letter it without retrying."""


def process(properties, body: bytes, work_seconds: float = 0.0) -> str:
    """The work done for one message; returns its id.

    This service's "work" is to accept the message (the 2017 receiver printed it);
    ``work_seconds`` simulates a slower handler. A message carrying the header
    ``x-seaport-poison`` (``python -m apps.send --poison``) fails every time.
    """
    message_id = properties.message_id
    if not message_id:
        raise PermanentError("message has no message_id")
    headers = properties.headers
    if headers and headers.get(POISON_HEADER):
        raise ProcessingError(f"poison message (header {POISON_HEADER})")
    if work_seconds:
        time.sleep(work_seconds)
    return message_id


class Consumer(ReconnectingService):
    """Consumes the work queue until stopped (or idle for ``idle_exit`` seconds).

    Args:
        prefetch: most unacknowledged deliveries the broker sends ahead.
        ack_every: send an ack after this many processed deliveries at most
            (default: a quarter of ``prefetch``).
        record: append each processed message id to this file, flushed before the ack.
        idle_exit: exit 0 after this many seconds connected without a message.
        work_seconds: simulated processing time per message.
        broker, queue, locator, log: see ReconnectingService.
    """

    metrics_service = telemetry.RECEIVE

    def __init__(
        self,
        broker,
        queue,
        prefetch: int = 500,
        ack_every: int | None = None,
        record: Path | None = None,
        idle_exit: float | None = None,
        work_seconds: float = 0.0,
        **kwargs,
    ):
        super().__init__(broker, queue, name="seaport-receive", **kwargs)
        self.prefetch = prefetch
        self.ack_every = ack_every or max(1, prefetch // 4)
        self.idle_exit = idle_exit
        self.work_seconds = work_seconds
        self.record_path = record
        self._record = open(record, "a", buffering=1 << 16) if record else None  # noqa: SIM115 - closed in close()
        self._consumer_tag: str | None = None
        self._pending_tag = 0  # highest processed, unacked delivery tag
        self._pending = 0
        self._flush_scheduled = False
        self._last_activity = time.monotonic()
        self._failures: OrderedDict[str, int] = OrderedDict()  # classic queues only
        self.processed = 0
        self.retried = 0
        self.dead_lettered = 0
        self._started_at: float | None = None

    # -- hooks ---------------------------------------------------------------------

    def setup_channel(self, channel, done) -> None:
        self._pending_tag = 0
        self._pending = 0
        self._flush_scheduled = False
        channel.add_on_cancel_callback(self._on_cancelled_by_broker)
        channel.basic_qos(prefetch_count=self.prefetch, callback=lambda _frame: done())

    def probe(self, channel, on_answer) -> None:
        channel.basic_qos(prefetch_count=self.prefetch, callback=on_answer)  # the prefetch it has: no change

    def on_ready(self) -> None:
        if self.stop_requested:
            self.finish(EXIT_OK)
            return
        self._consumer_tag = self.channel.basic_consume(self.queue.name, self._on_message)
        self._last_activity = time.monotonic()
        if self._started_at is None:
            self._started_at = self._last_activity
        self.log.info("consuming", extra={"fields": {"queue": self.queue.name, "prefetch": self.prefetch}})

    def on_tick(self) -> None:
        if (
            self.idle_exit is not None
            and self._consumer_tag is not None
            and not self.stop_requested
            and time.monotonic() - self._last_activity > self.idle_exit
        ):
            self.log.info("idle, exiting", extra={"fields": {"idle_s": self.idle_exit}})
            self.request_stop()

    def on_connection_lost(self) -> None:
        # Unacked deliveries of the dead channel will be redelivered; their tags mean nothing now.
        self._consumer_tag = None
        self._pending_tag = 0
        self._pending = 0
        self._flush_record()

    def on_stop_requested(self) -> None:
        if not self.ready or self._consumer_tag is None:
            self.finish(EXIT_OK)
            return
        # Basic.Cancel: the broker stops delivering. Deliveries already handled are
        # acked below; ones still in transit are returned to the queue by pika.
        self.channel.basic_cancel(self._consumer_tag, callback=self._on_cancel_ok)

    def wants_reconnect(self) -> bool:
        return not self.stop_requested

    # -- consuming ---------------------------------------------------------------------

    def _on_message(self, channel, method, properties, body) -> None:
        self._last_activity = time.monotonic()
        try:
            message_id = process(properties, body, self.work_seconds)
        except ProcessingError as error:
            self._failed(channel, method, properties, error)
            return
        if self._record is not None:
            self._record.write(message_id + "\n")
        self.processed += 1
        self._pending_tag = method.delivery_tag
        self._pending += 1
        if self._pending >= self.ack_every:
            self._flush_acks()
        elif not self._flush_scheduled:
            # Runs after the deliveries already read from the socket are handled.
            self._flush_scheduled = True
            self.connection.ioloop.call_later(0, self._flush_acks)

    def _failed(self, channel, method, properties, error: ProcessingError) -> None:
        self._flush_acks()  # settle the successes before this delivery first
        attempt = self._attempt(properties)
        final = isinstance(error, PermanentError) or attempt >= self.queue.max_deliveries
        fields = {"message_id": properties.message_id, "attempt": attempt, "error": str(error)}
        if final:
            self.dead_lettered += 1
            self._failures.pop(properties.message_id or "", None)
            self.log.warning("processing failed, dead-lettering", extra={"fields": fields})
        else:
            self.retried += 1
            self.log.warning("processing failed, will retry", extra={"fields": fields})
        channel.basic_reject(method.delivery_tag, requeue=not final)  # not nack: see the module docstring

    def _attempt(self, properties) -> int:
        """Which delivery of this message this is (1 for the first)."""
        headers = properties.headers or {}
        if "x-delivery-count" in headers:  # quorum queues: redeliveries so far
            return int(headers["x-delivery-count"]) + 1
        if self.queue.queue_type == "quorum":
            return 1
        key = properties.message_id or ""
        count = self._failures.pop(key, 0) + 1
        self._failures[key] = count
        while len(self._failures) > FAILURE_MEMORY:
            self._failures.popitem(last=False)
        return count

    def _flush_acks(self) -> None:
        self._flush_scheduled = False
        if not self._pending or not self.ready:
            return
        self._flush_record()  # ids on disk (in the OS) before the broker forgets the messages
        self.channel.basic_ack(self._pending_tag, multiple=True)
        self._pending = 0

    def _flush_record(self) -> None:
        if self._record is not None:
            self._record.flush()

    def _on_cancel_ok(self, _frame) -> None:
        self._consumer_tag = None
        self._flush_acks()
        self.finish(EXIT_OK)

    def _on_cancelled_by_broker(self, _frame) -> None:
        # The queue was deleted, or (in a cluster) its leader moved: start over.
        self.log.warning("consumer cancelled by the broker, reconnecting")
        self._consumer_tag = None
        self._flush_acks()
        self._lost_reason = "consumer cancelled by the broker"
        self._close_connection(lost=True)

    # -- reporting -------------------------------------------------------------------------

    def progress(self) -> dict:
        return {"processed": self.processed, "retried": self.retried, "dead_lettered": self.dead_lettered}

    def metric_totals(self) -> dict[str, int]:
        return {
            telemetry.PROCESSED: self.processed,
            telemetry.FAILED: self.retried + self.dead_lettered,  # every failed delivery
            telemetry.DEAD_LETTERED: self.dead_lettered,
        }

    def stats(self) -> dict:
        seconds = time.monotonic() - self._started_at if self._started_at else 0.0
        return {
            "processed": self.processed,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "seconds": round(seconds, 3),
            "msgs_per_s": round(self.processed / seconds, 1) if seconds else 0.0,
        }

    def close(self) -> None:
        if self._record is not None:
            self._record.close()
            self._record = None
