"""The connection lifecycle shared by apps.send and apps.receive.

One pika ``SelectConnection`` (asynchronous, one thread) at a time: connect,
open a channel, let the app set it up (confirms, prefetch), declare the queues,
then hand over to the app. When the connection or channel is lost the ioloop
stops and ``run`` connects again after a capped exponential backoff, asking
Consul afresh when the broker is found by service name. Failures that retrying
cannot fix (login refused, a queue that exists with other arguments) and a
retry budget spent end the run with one error line and a non-zero exit code.

Signals only set a flag (``request_stop``); a timer on the ioloop (every
``tick_seconds``) notices it and starts the app's graceful stop, so no pika
call ever runs inside a signal handler. The same timer logs a ``progress``
record every ``progress_interval`` seconds, connected or not, and one at the
end: the app's counters for people, and a CloudWatch Embedded Metric Format
record (apps.common.contract.telemetry) with what happened since the previous
one and, measured just before when connected, the queue depths, under the
``Cluster`` dimension ``metrics_cluster`` (METRICS_CLUSTER, read by
apps.common.amqp_cli).

Liveness (apps.common.contract.liveness): with a ``Heartbeat``, the same timer
refreshes the heartbeat file the container health check reads, dated when
progress was last seen. Waiting for the broker counts as progress (between
attempts, while connecting, while the broker blocks publishing): the retry
budget, the connection timeouts and pika's ``blocked_connection_timeout``
bound it. Connected, it is the broker being heard from: any bytes received.
When the connection has been quiet for a refresh interval (an empty queue,
heartbeats further apart or off) the app asks the broker something cheap
(``probe``), whose answer counts. A loop blocked in a callback refreshes
nothing, and neither does a connection whose broker went silent.
"""

from __future__ import annotations

import contextlib
import logging
import time

import pika
import pika.exceptions

from apps.common.config import ConfigError
from apps.common.contract import telemetry
from apps.common.discovery import DiscoveryError
from apps.common.liveness import Heartbeat
from apps.common.rabbitmq import (
    Backoff,
    BrokerAddress,
    BrokerLocator,
    BrokerSettings,
    QueueDepths,
    QueueSettings,
    connection_parameters,
    declare_queues,
    describe_connection_error,
    measure_queues,
)

EXIT_OK = 0
EXIT_INCOMPLETE = 1  # stopped with work unfinished (e.g. messages never confirmed)
EXIT_CONFIG = 2  # a setting is wrong (argparse uses 2 for bad flags too)
EXIT_BROKER = 3  # no usable broker within the retry budget, or login refused

MEASURE_TIMEOUT = 5.0  # seconds to wait for the queue depths before a progress record goes without them

# Channel close codes that mean "your request is wrong", not "try again".
_PERMANENT_CHANNEL_ERRORS = {403: "ACCESS_REFUSED", 406: "PRECONDITION_FAILED"}


class ReconnectingService:
    """Base of the publisher and the consumer. Subclasses override the hooks below.

    Args:
        broker: where the broker is and how long to keep trying.
        queue: the queues to declare.
        name: connection name shown in the broker's management UI and in logs.
        locator: finds the broker (default: from ``broker``'s URL or Consul).
        progress_interval: seconds between ``progress`` records (None: none).
        liveness: the heartbeat file to refresh while the loop makes progress (None: none).
        metrics_cluster: the ``Cluster`` dimension of the metrics: the ECS cluster's name (METRICS_CLUSTER).
    """

    tick_seconds = 0.05
    metrics_service: str | None = None  # the Service dimension of the metrics (telemetry.SEND, ...)

    def __init__(
        self,
        broker: BrokerSettings,
        queue: QueueSettings,
        name: str,
        locator: BrokerLocator | None = None,
        log: logging.Logger | None = None,
        progress_interval: float | None = None,
        liveness: Heartbeat | None = None,
        metrics_cluster: str = telemetry.DEFAULT_CLUSTER,
    ):
        problem = telemetry.cluster_problem(metrics_cluster)
        if problem:
            raise ConfigError(f"{telemetry.CLUSTER_VARIABLE}={metrics_cluster!r} {problem}")
        self.broker = broker
        self.queue = queue
        self.name = name
        self.locator = locator or BrokerLocator(broker)
        self.log = log or logging.getLogger(name)
        self.backoff = Backoff(broker.backoff_initial, broker.backoff_max, broker.retry_seconds)
        self.connection: pika.SelectConnection | None = None
        self.channel = None
        self.address: BrokerAddress | None = None
        self.stop_requested = False
        self.exit_code: int | None = None
        self._stop_started = False
        self._closing = False
        self._ready = False
        self._open_error: BaseException | None = None
        self._lost_reason: str | None = None
        self.clock = time.monotonic  # for timers of the app's own (tests replace it)
        self.progress_interval = progress_interval or None  # None or 0: no progress records
        self._progress_due = self.clock() + (self.progress_interval or 0)
        self._measuring: object | None = None  # the measurement whose answer the next record waits for
        self._measuring_since = 0.0
        self._reported_totals: dict[str, int] = {}
        self.liveness = liveness
        self.metrics_cluster = metrics_cluster
        self.broker_blocked = False  # the broker blocks this connection's publishing (connection.blocked)
        self._heard_at = time.monotonic()  # when the open connection last received anything
        self._bytes_seen = -1
        self._probing = False

    # -- hooks for subclasses -------------------------------------------------

    def setup_channel(self, channel, done) -> None:
        """Prepare a new channel (confirm mode, prefetch), then call ``done()``."""
        done()

    def on_ready(self) -> None:
        """The channel is open and the queues exist: start working."""

    def on_tick(self) -> None:
        """Called every ``tick_seconds``, also while waiting to reconnect (channel is None then)."""

    def on_connection_lost(self) -> None:
        """The connection is gone: forget delivery tags, keep what must be redone."""

    def on_stop_requested(self) -> None:
        """SIGTERM: stop taking new work; call ``finish`` when what is in flight is done."""
        self.finish(EXIT_OK)

    def wants_reconnect(self) -> bool:
        """After a lost connection, whether to connect again (False ends the run with exit 0)."""
        return True

    def on_blocked(self, reason: str) -> None:
        """The broker stopped reading what this connection publishes (a memory or disk alarm)."""

    def on_unblocked(self) -> None:
        """The alarm is over: the broker reads publishes again."""

    def progress(self) -> dict:
        """The counters of the periodic ``progress`` record, for people (totals so far)."""
        return {}

    def metric_totals(self) -> dict[str, int]:
        """Counters by telemetry metric name, totals so far; each record carries their increase."""
        return {}

    def probe(self, channel, on_answer) -> None:
        """Ask the broker something cheap on ``channel`` (liveness, on a quiet connection); ``on_answer(frame)``.

        ``basic.qos`` only involves the channel (no queue, no permission), and
        with the prefetch the channel already has it changes nothing."""
        channel.basic_qos(prefetch_count=0, callback=on_answer)

    # -- control -----------------------------------------------------------------

    def request_stop(self, *_signal_args) -> None:
        """Ask for a graceful stop. Safe in a signal handler: it only sets a flag."""
        self.stop_requested = True

    def finish(self, exit_code: int, error: str | None = None) -> None:
        """End the run with ``exit_code``: close the connection, make ``run`` return."""
        if self.exit_code is None:
            self.exit_code = exit_code
            if error:
                self.log.error(error)
        self._close()

    @property
    def ready(self) -> bool:
        """Connected, channel open, queues declared."""
        return self._ready and self.channel is not None and self.channel.is_open

    def run(self) -> int:
        """Connect, work, reconnect as needed; the exit code once finished."""
        self._beat()
        while self.exit_code is None:
            self._check_stop()
            if self.exit_code is not None:
                break
            try:
                self.address = self.locator.next_address()
            except ConfigError as error:
                self.finish(EXIT_CONFIG, str(error))
                break
            except DiscoveryError as error:
                self._retry_later(f"cannot find the broker: {error}")
                continue
            self._connect_and_serve()
        if self.progress_interval is not None:
            self._write_progress(None)  # the last counts, so the metrics add up to the totals
        return self.exit_code

    # -- connection lifecycle -------------------------------------------------------

    def _connect_and_serve(self) -> None:
        self._open_error = None
        self._lost_reason = None
        self._closing = False
        self._ready = False
        params = connection_parameters(self.address, self.broker, self.name)
        self.connection = pika.SelectConnection(
            params,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed,
        )
        self.connection.add_on_connection_blocked_callback(self._on_blocked)
        self.connection.add_on_connection_unblocked_callback(self._on_unblocked)
        self.connection.ioloop.call_later(self.tick_seconds, self._tick)
        self.connection.ioloop.start()  # returns once the connection is closed
        self.connection = None
        self.channel = None
        self._ready = False
        if self.exit_code is not None:
            return
        if self._open_error is not None:
            reason, permanent = describe_connection_error(self._open_error)
            if self.address.tls and reason.startswith("TLS certificate rejected"):
                reason += f" ({self.broker.tls_identity(self.address)})"
            self.locator.failed(self.address)
            if permanent:
                self.finish(EXIT_BROKER, self._cannot_connect(reason, gave_up=False))
            else:
                self._retry_later(reason)
            return
        # It was connected and the connection was lost.
        self.log.warning(
            "connection to the broker lost",
            extra={"fields": {"broker": str(self.address), "reason": self._lost_reason}},
        )
        self.locator.failed(self.address)
        self.on_connection_lost()
        if not self.wants_reconnect():
            self.finish(EXIT_OK)
            return
        self._retry_later(self._lost_reason or "connection lost")

    def _retry_later(self, reason: str) -> None:
        delay = self.backoff.failed()
        if self.backoff.exhausted():
            self.finish(EXIT_BROKER, self._cannot_connect(reason))
            return
        delay = min(delay, self.backoff.remaining())
        self.log.warning(
            "broker unavailable, retrying",
            extra={
                "fields": {
                    "broker": str(self.address) if self.address else self.broker.service,
                    "reason": reason,
                    "retry_in_s": round(delay, 2),
                    "attempt": self.backoff.failures,
                }
            },
        )
        deadline = time.monotonic() + delay
        while self.exit_code is None and time.monotonic() < deadline:
            time.sleep(min(self.tick_seconds, max(0.0, deadline - time.monotonic())))
            self._check_stop()
            self.on_tick()
            self._report_progress_if_due()
            self._beat()

    def _cannot_connect(self, reason: str, gave_up: bool = True) -> str:
        where = f"{self.address} ({self.address.source})" if self.address else repr(self.broker.service)
        message = f"cannot use RabbitMQ at {where}: {reason}"
        if gave_up:
            attempts = self.backoff.failures
            message += (
                f"; gave up after {self.backoff.elapsed():.1f} s and {attempts} attempt{'s' if attempts != 1 else ''}"
            )
        return message

    def _on_connection_open(self, connection) -> None:
        self._heard_at = time.monotonic()
        self._bytes_seen = connection.bytes_received
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, connection, error) -> None:
        self._open_error = error
        connection.ioloop.stop()

    def _on_connection_closed(self, connection, reason) -> None:
        self.channel = None
        self._ready = False
        self.broker_blocked = False
        if not self._closing and self._lost_reason is None:
            self._lost_reason = describe_connection_error(reason)[0]
        connection.ioloop.stop()

    def _on_blocked(self, _connection, frame) -> None:
        self.broker_blocked = True
        self.on_blocked(str(getattr(frame.method, "reason", "") or "unknown"))

    def _on_unblocked(self, _connection, _frame) -> None:
        self.broker_blocked = False
        self._heard_at = time.monotonic()
        self.on_unblocked()

    def _on_channel_open(self, channel) -> None:
        self.channel = channel
        self._probing = False
        channel.add_on_close_callback(self._on_channel_closed)
        self.setup_channel(channel, lambda: declare_queues(channel, self.queue, self._on_declared))

    def _on_declared(self) -> None:
        self.backoff.succeeded()
        self.locator.worked()
        self._ready = True
        self.log.info(
            "connected",
            extra={
                "fields": {
                    "broker": str(self.address),
                    "queue": self.queue.name,
                    "queue_type": self.queue.queue_type,
                }
            },
        )
        self.on_ready()

    def _on_channel_closed(self, channel, reason) -> None:
        if channel is not self.channel:
            return
        self.channel = None
        self._ready = False
        if self._closing:
            self._close_connection()
            return
        code = getattr(reason, "reply_code", None)
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker) and code in _PERMANENT_CHANNEL_ERRORS:
            text = " ".join(str(reason.reply_text).split())
            self.finish(EXIT_CONFIG, f"the broker refused a request on queue {self.queue.name!r}: {text}")
            return
        connection = self.connection
        if connection is None or connection.is_closing or connection.is_closed:
            return  # the connection is going: _on_connection_closed reports and reconnects
        self._lost_reason = f"channel closed: {reason}"
        self.log.warning("channel closed, reconnecting", extra={"fields": {"reason": str(reason)}})
        self._close_connection(lost=True)

    def _close(self) -> None:
        """Close the channel, then the connection (or just stop the loop if never opened)."""
        self._closing = True
        self._ready = False
        if self.channel is not None and self.channel.is_open:
            self.channel.close()  # _on_channel_closed closes the connection
        else:
            self._close_connection()

    def _close_connection(self, lost: bool = False) -> None:
        connection = self.connection
        if connection is None:
            return
        if lost:
            self._closing = False  # _on_connection_closed then treats it as a loss
        if connection.is_closed:
            connection.ioloop.stop()
            return
        # pika aborts a connection that is still opening (its open-error callback follows);
        # one that is already closing will call _on_connection_closed anyway.
        with contextlib.suppress(pika.exceptions.ConnectionWrongStateError):
            connection.close()

    def _check_stop(self) -> None:
        if self.stop_requested and not self._stop_started:
            self._stop_started = True
            self.log.info("stop requested")
            self.on_stop_requested()

    def _tick(self) -> None:
        connection = self.connection
        if connection is None or connection.is_closed:
            return
        self._check_stop()
        self.on_tick()
        self._report_progress_if_due()
        self._beat()
        connection.ioloop.call_later(self.tick_seconds, self._tick)

    # -- liveness --------------------------------------------------------------------

    def _beat(self) -> None:
        """Refresh the heartbeat file when due, dated when progress was last seen (see the module docstring)."""
        if self.liveness is None or not self.liveness.due():
            return
        now = time.monotonic()
        connection = self.connection
        if connection is None or not (connection.is_open or connection.is_closing):
            self.liveness.beat(now, "connecting" if connection is not None else "waiting for the broker")
            return
        if self.broker_blocked:
            self.liveness.beat(now, "blocked by the broker")
            return
        received = connection.bytes_received
        if received != self._bytes_seen:
            self._bytes_seen = received
            self._heard_at = now
        elif now - self._heard_at >= self.liveness.refresh_seconds:
            self._send_probe()
        state = "closing" if connection.is_closing else "connected" if self.ready else "opening the channel"
        self.liveness.beat(self._heard_at, state)

    def _send_probe(self) -> None:
        channel = self.channel
        if self._probing or channel is None or not channel.is_open or self._closing:
            return
        self._probing = True

        def answered(_frame) -> None:
            if channel is self.channel:
                self._probing = False
                self._heard_at = time.monotonic()

        self.probe(channel, answered)

    def _report_progress_if_due(self) -> None:
        if self.progress_interval is None:
            return
        now = self.clock()
        if self._measuring is not None:
            if now - self._measuring_since > MEASURE_TIMEOUT:
                self._measuring = None  # no answer (the channel went): report without the depths
                self._write_progress(None)
            return
        if now < self._progress_due:
            return
        self._progress_due = now + self.progress_interval
        if not self.ready:
            self._write_progress(None)
            return
        measurement = self._measuring = object()
        self._measuring_since = now
        measure_queues(self.channel, self.queue, lambda depths: self._on_measured(measurement, depths))

    def _on_measured(self, measurement: object, depths: QueueDepths) -> None:
        if measurement is self._measuring:  # not one that timed out
            self._measuring = None
            self._write_progress(depths)

    def _write_progress(self, depths: QueueDepths | None) -> None:
        fields = self.progress()
        if self.metrics_service is not None:
            totals = self.metric_totals()
            values: dict[str, float | None] = {
                name: total - self._reported_totals.get(name, 0) for name, total in totals.items()
            }
            self._reported_totals = totals
            if depths is not None:
                values[telemetry.QUEUE_DEPTH] = depths.messages
                values[telemetry.DEAD_LETTER_DEPTH] = depths.dead_letters
                values[telemetry.CONSUMERS] = depths.consumers
            fields.update(
                telemetry.emf_record(self.metrics_service, self.queue.name, values, cluster=self.metrics_cluster)
            )
        self.log.info("progress", extra={"fields": fields})
