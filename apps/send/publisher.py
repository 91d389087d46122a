"""Publishing with asynchronous publisher confirms and a bounded in-flight window.

Each message is published persistent to the durable work queue with
``mandatory`` set, and kept, keyed by its delivery tag, until the broker
confirms it. Up to ``window`` messages are unconfirmed at a time: waiting for
each confirm in turn is ~10x slower, an unbounded window would buffer without
limit while the broker is slow. Confirms may cover many tags at once
(``multiple``). A nack, a message returned as unroutable, or a connection lost
before the confirm all put the message back in line to be published again, so
every message is confirmed at least once (duplicates are possible: consumers
must tolerate them, as with any at-least-once delivery).

While the broker blocks the connection (``connection.blocked``: a memory or
disk alarm), nothing new is published: the broker would not read it, and
pika would buffer it without limit. What is unconfirmed stays in the window;
publishing resumes at ``connection.unblocked``. Should pika give up on a
blocked connection (``blocked_connection_timeout``), the reconnection
publishes the window again: at most ``window`` duplicates, nothing lost.

When no broker node can take messages (the connection is lost and not yet
replaced, e.g. a cluster that lost its majority: with ``pause_minority`` the
remaining node stops serving; or confirms stop coming for ``STALL_SECONDS``
while messages wait for them, e.g. a quorum queue whose leader just died),
send logs ``publishing paused`` once, with what it keeps to republish, and
``publishing resumed`` (with the pause's length) at the next confirm. Stalled
confirms also make it reconnect (``confirms stalled, reconnecting``) and
publish the unconfirmed messages again. Nothing is dropped meanwhile:
unconfirmed messages are published again, possibly twice (at-least-once).

A nack means the broker did not take the message: typically a full queue
(the policy's ``overflow: reject-publish``) or an internal error. Publishing
then pauses, for a wait that doubles while nacks go on (up to 2 s), instead
of hammering a full queue with the same messages.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

from pika.spec import Basic

from apps.common.amqp_service import EXIT_INCOMPLETE, EXIT_OK, ReconnectingService
from apps.common.contract import telemetry
from apps.common.rabbitmq import declare_queues
from apps.send.messages import MessageSource, OutgoingMessage

NACK_PAUSE_INITIAL = 0.05  # seconds without publishing after a nack, doubling while nacks go on
NACK_PAUSE_MAX = 2.0
STALL_SECONDS = 5.0  # messages waiting for confirms and none came this long: publishing is paused


class Publisher(ReconnectingService):
    """Publishes what ``source`` hands out until it is exhausted (or forever, at a rate).

    Args:
        source: the messages (count and/or rate).
        window: most messages published and not yet confirmed.
        drain_timeout: after SIGTERM, how long to wait for outstanding confirms.
        broker, queue, locator, log: see ReconnectingService.
    """

    metrics_service = telemetry.SEND

    def __init__(self, broker, queue, source: MessageSource, window=2000, drain_timeout=20.0, **kwargs):
        super().__init__(broker, queue, name="seaport-send", **kwargs)
        self.source = source
        self.window = window
        self.drain_timeout = drain_timeout
        self.unconfirmed: OrderedDict[int, OutgoingMessage] = OrderedDict()  # delivery tag -> message
        self.to_resend: deque[OutgoingMessage] = deque()
        self.returned: set[str] = set()  # ids returned as unroutable, awaiting their confirm
        self._next_tag = 1
        self._drain_deadline: float | None = None
        self._started_at: float | None = None
        self._redeclaring = False
        self._paused_until = 0.0  # after nacks: no publishing before this time.monotonic()
        self._nack_streak = 0  # confirms in a row that were nacks
        self._blocked_since: float | None = None  # while the broker blocks the connection
        self.blocked_seconds = 0.0
        self._paused_since: float | None = None  # no broker takes messages (connection lost, or confirms stalled)
        self._last_confirm = time.monotonic()
        self.paused_seconds = 0.0
        self.confirmed = 0
        self.republished = 0
        self.nacked = 0
        self.returned_count = 0

    # -- hooks -----------------------------------------------------------------

    def setup_channel(self, channel, done) -> None:
        self._next_tag = 1
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: done())

    def on_ready(self) -> None:
        if self._started_at is None:
            self._started_at = time.monotonic()
        self._last_confirm = time.monotonic()
        self._pump()

    def on_tick(self) -> None:
        if self._drain_deadline is not None:
            if self.outstanding == 0:
                self._finish_stopped()
                return
            if time.monotonic() > self._drain_deadline:
                self.finish(
                    EXIT_INCOMPLETE,
                    f"{self.outstanding} messages not confirmed {self.drain_timeout:g} s after the stop "
                    "request; they may not have reached the broker",
                )
                return
        if (
            self.ready
            and self.unconfirmed
            and not self.blocked
            and time.monotonic() - self._last_confirm > STALL_SECONDS
        ):
            self._confirms_stalled()
        if self.ready and (self.source.rate is not None or self.to_resend):
            self._pump()  # paced sending, or resending after a pause

    def on_blocked(self, reason: str) -> None:
        if self._blocked_since is None:
            self._blocked_since = time.monotonic()
            self.log.warning(
                "the broker blocked publishing, pausing",
                extra={"fields": {"reason": reason, "unconfirmed": len(self.unconfirmed)}},
            )

    def on_unblocked(self) -> None:
        if self._blocked_since is not None:
            seconds = self._end_blocked()
            self.log.info("the broker unblocked publishing, resuming", extra={"fields": {"blocked_s": seconds}})
            self._pump()

    def _end_blocked(self) -> float:
        seconds = time.monotonic() - self._blocked_since
        self.blocked_seconds += seconds
        self._blocked_since = None
        return round(seconds, 3)

    @property
    def blocked(self) -> bool:
        return self._blocked_since is not None

    def on_connection_lost(self) -> None:
        if self.blocked:
            self._end_blocked()  # a new connection starts unblocked
        # Unconfirmed messages may or may not have reached the broker: send them again,
        # before anything new and in their original order.
        lost = list(self.unconfirmed.values())
        self.unconfirmed.clear()
        self.returned.clear()
        self.to_resend.extendleft(reversed(lost))
        if lost:
            self.log.warning("will republish unconfirmed messages", extra={"fields": {"unconfirmed": len(lost)}})
        if not self.done:
            self._pause("lost the connection to the broker node; trying the others")

    def _confirms_stalled(self) -> None:
        """Messages wait for confirms and none came for STALL_SECONDS: publish them again on a new connection.

        Seen on RabbitMQ 3.10 when the node leading the quorum queue is killed: a channel opened on another
        node just then may nack everything it is given, for good, although the queue has a new leader within
        seconds. A new connection (to another node when there is one) gets the new leader. When the queue
        has no majority, no connection helps: this repeats, paused, until the majority is back."""
        self._last_confirm = time.monotonic()
        self._pause(f"no confirm for {STALL_SECONDS:g} s (the queue's leader gone, or its majority?)")
        self.log.warning(
            "confirms stalled, reconnecting to publish again",
            extra={"fields": {"unconfirmed": len(self.unconfirmed), "broker": str(self.address)}},
        )
        self._lost_reason = f"no confirm for {STALL_SECONDS:g} s"
        self._close_connection(lost=True)

    def _pause(self, reason: str) -> None:
        """Say once that nothing gets published now, and what is kept to publish again."""
        if self._paused_since is not None:
            return
        self._paused_since = time.monotonic()
        self.log.warning(
            "publishing paused",
            extra={
                "fields": {
                    "reason": reason,
                    "to_republish": len(self.to_resend) + len(self.unconfirmed),
                    "confirmed": self.confirmed,
                }
            },
        )

    def _resume(self) -> None:
        seconds = time.monotonic() - self._paused_since
        self.paused_seconds += seconds
        self._paused_since = None
        self.log.info(
            "publishing resumed",
            extra={"fields": {"paused_s": round(seconds, 3), "broker": str(self.address), "confirmed": self.confirmed}},
        )

    def on_stop_requested(self) -> None:
        if self.outstanding == 0:
            self._finish_stopped()
            return
        self._drain_deadline = time.monotonic() + self.drain_timeout
        self.log.info("waiting for outstanding confirms", extra={"fields": {"outstanding": self.outstanding}})

    def wants_reconnect(self) -> bool:
        return not self.stop_requested or self.outstanding > 0

    # -- state -------------------------------------------------------------------

    @property
    def outstanding(self) -> int:
        """Messages handed out and not yet confirmed."""
        return len(self.unconfirmed) + len(self.to_resend)

    @property
    def done(self) -> bool:
        return self.source.exhausted and self.outstanding == 0

    def stats(self) -> dict:
        seconds = time.monotonic() - self._started_at if self._started_at else 0.0
        return {
            "run_id": self.source.factory.run_id,
            "published": self.source.issued,
            "confirmed": self.confirmed,
            "republished": self.republished,
            "nacked": self.nacked,
            "returned": self.returned_count,
            "blocked_s": round(self.blocked_seconds, 3),
            "paused_s": round(
                self.paused_seconds + (time.monotonic() - self._paused_since if self._paused_since else 0), 3
            ),
            "seconds": round(seconds, 3),
            "msgs_per_s": round(self.confirmed / seconds, 1) if seconds else 0.0,
        }

    def progress(self) -> dict:
        return {
            "published": self.source.issued,
            "confirmed": self.confirmed,
            "outstanding": self.outstanding,
            "republished": self.republished,
            "nacked": self.nacked,
            "returned": self.returned_count,
            "blocked": self.blocked,
        }

    def metric_totals(self) -> dict[str, int]:
        return {telemetry.PUBLISHED: self.source.issued, telemetry.CONFIRMED: self.confirmed}

    def log_summary(self) -> None:
        self.log.info("summary", extra={"fields": self.stats()})

    # -- publishing ------------------------------------------------------------------

    def _pump(self) -> None:
        """Publish until the window is full or there is nothing to send right now."""
        if not self.ready or self._redeclaring or self.blocked or self.clock() < self._paused_until:
            return
        channel = self.channel
        routing_key = self.queue.name
        unconfirmed = self.unconfirmed
        while len(unconfirmed) < self.window:
            if self.to_resend:
                message = self.to_resend.popleft()
                self.republished += 1
            elif not self.stop_requested:
                message = self.source.take()
                if message is None:
                    break
            else:
                break
            channel.basic_publish("", routing_key, message.body, message.properties, mandatory=True)
            unconfirmed[self._next_tag] = message
            self._next_tag += 1
        if self.done:
            self.finish(EXIT_OK)

    def _on_confirm(self, frame) -> None:
        if isinstance(frame.method, Basic.Ack):  # nacks do not count: a broker may nack everything
            self._last_confirm = time.monotonic()
            if self._paused_since is not None:
                self._resume()
        method = frame.method
        settled = self._settle(method.delivery_tag, method.multiple)
        if isinstance(method, Basic.Ack) and not self.returned:
            self.confirmed += len(settled)
        else:
            acked = isinstance(method, Basic.Ack)
            for message in settled:
                if acked and message.message_id not in self.returned:
                    self.confirmed += 1
                    continue
                self.returned.discard(message.message_id)
                if not acked:
                    self.nacked += 1
                self.to_resend.append(message)
        if settled:
            self._track_nacks(refused=0 if isinstance(method, Basic.Ack) else len(settled))
        if self.stop_requested and self.outstanding == 0:
            self._finish_stopped()
        else:
            self._pump()

    def _track_nacks(self, refused: int) -> None:
        """Pause publishing after a nack, longer while nacks go on; resume at the first ack."""
        if not refused:
            if self._nack_streak:
                self._nack_streak = 0
                self.log.info("the broker accepts messages again")
            return
        self._nack_streak += 1
        pause = min(NACK_PAUSE_MAX, NACK_PAUSE_INITIAL * 2 ** min(self._nack_streak - 1, 16))
        self._paused_until = self.clock() + pause
        if self._nack_streak == 1:  # once per episode, not once per nack
            self.log.warning(
                "the broker refused messages (queue full?); publishing them again after a pause",
                extra={"fields": {"nacked": refused, "pause_s": pause}},
            )

    def _settle(self, tag: int, multiple: bool) -> list[OutgoingMessage]:
        """Remove and return the messages a confirm covers."""
        unconfirmed = self.unconfirmed
        if not multiple:
            message = unconfirmed.pop(tag, None)
            return [message] if message is not None else []
        settled = []
        while unconfirmed:
            first = next(iter(unconfirmed))
            if first > tag:
                break
            settled.append(unconfirmed.popitem(last=False)[1])
        return settled

    def _on_return(self, channel, method, properties, body) -> None:
        # Unroutable: the queue is gone (deleted by hand?). The confirm that follows
        # must not count; declare the queues again and resend.
        self.returned.add(properties.message_id)
        self.returned_count += 1
        self.log.warning(
            "message returned by the broker, redeclaring the queues",
            extra={"fields": {"reply": method.reply_text, "message_id": properties.message_id}},
        )
        if not self._redeclaring:
            self._redeclaring = True
            declare_queues(channel, self.queue, self._on_redeclared)

    def _on_redeclared(self) -> None:
        self._redeclaring = False
        self._pump()

    def _finish_stopped(self) -> None:
        self.finish(EXIT_OK)
