"""Messaging throughput: the 2017 way, the naive fast way, and apps.send / apps.receive.

``python -m benchmarks.messaging`` (``make bench``) starts one throwaway RabbitMQ
node and, against it, measures:

  (a) seed style: a new connection per message, as the original send.py did
      (non-durable classic queue, transient message; fewer messages, it is slow);
  (b) fire-and-forget: one connection, no confirms, persistent messages to a
      queue of the same type as (c), timed until the broker holds all of them;
  (c) apps.send: persistent messages, publisher confirms, bounded window, timed
      until the last confirm (the apps' own Publisher, in this process);
  (d) an auto-ack consumer draining (b)'s queue;
  (e) apps.receive: prefetch, manual acks after processing, every id recorded
      to a file, draining (c)'s queue.

(b) and (c) publish the same messages (apps.send's bodies and properties, built
as they go) over the same pika transport, so the ratio is the price of
confirms; (d) and (e) drain the same number of the same messages. Each of
(b)-(e) runs ``--rounds`` times, interleaved; each round's ratios compare runs
made seconds apart under the same load, and the median over the rounds is
reported (the machine is shared: a single best or worst round says more about
the neighbours than about the code). ``lost`` is the ids (c) confirmed that (e)
never recorded. Fire-and-forget has no such guarantee: what the broker never
queued of (b) is reported as ``fire_and_forget_lost``.

Writes build/bench/messaging.json, prints a table, exits 1 if a target is missed:
send >= 0.8 x fire-and-forget, send >= 50 x seed style, receive >= 0.6 x auto-ack, lost == 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pika

from apps.common.pika_tuning import coalesce_writes
from apps.common.rabbitmq import BrokerSettings, QueueSettings, declare_queues
from apps.receive.consumer import Consumer
from apps.send.messages import MessageFactory, MessageSource, message_id
from apps.send.publisher import Publisher
from devtools.procs import REPO_ROOT
from devtools.rabbitmq import RabbitMQNode

TARGETS = {
    "send_vs_fire_and_forget": 0.8,
    "send_vs_seed_style": 50.0,
    "receive_vs_auto_ack": 0.6,
}


# -- (a) ---------------------------------------------------------------------------------


def seed_style(url: str, count: int) -> float:
    """Messages/s publishing as appendix B did: connect, declare, publish one, close."""
    params = pika.URLParameters(url)
    started = time.monotonic()
    for n in range(count):
        connection = pika.BlockingConnection(params)
        channel = connection.channel()
        channel.queue_declare(queue="hello")
        channel.basic_publish(exchange="", routing_key="hello", body=f"Hello World! {n}".encode())
        connection.close()
    return count / (time.monotonic() - started)


# -- (b) ---------------------------------------------------------------------------------


def fire_and_forget(url: str, queue: QueueSettings, count: int, chunk: int = 1000) -> tuple[float, int]:
    """(messages/s, messages queued) publishing without confirms on one connection, until the queue stops growing.

    Without confirms nothing says a message arrived: the rate counts what the broker queued.
    """
    source = MessageSource(MessageFactory("ff"), count=count)
    timing: dict[str, float] = {}

    def on_open(connection):
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel):
        declare_queues(channel, queue, lambda: start(channel))

    def start(channel):
        timing["start"] = time.monotonic()
        publish_chunk(channel)

    def publish_chunk(channel):
        for _ in range(chunk):
            message = source.take()
            if message is None:
                break
            channel.basic_publish("", queue.name, message.body, message.properties)
        if source.exhausted:
            channel.connection.close()  # Close-Ok comes back after the broker read everything before it
        else:
            channel.connection.ioloop.call_later(0, lambda: publish_chunk(channel))  # let the loop write

    # Opened before the clock starts, so checking the depth costs no connection setup.
    with QueueDepth(url, queue.name) as depth:
        run_until_closed(url, on_open)
        queued, reached_at = depth.wait_for(count)
    return queued / (reached_at - timing["start"]), queued


def run_until_closed(url: str, on_open) -> None:
    """Open an asynchronous connection and run its loop until the callbacks close it."""
    connection = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=on_open,
        on_open_error_callback=on_open_error,
        on_close_callback=lambda conn, _reason: conn.ioloop.stop(),
    )
    connection.ioloop.start()


def on_open_error(_connection, error):
    raise RuntimeError(f"cannot connect to the benchmark broker: {error!r}")


class QueueDepth:
    """Polls a queue's message count over one connection."""

    def __init__(self, url: str, queue: str):
        self.url = url
        self.queue = queue

    def __enter__(self) -> QueueDepth:
        self.connection = pika.BlockingConnection(pika.URLParameters(self.url))
        self.channel = self.connection.channel()
        return self

    def __exit__(self, *exc) -> None:
        self.connection.close()

    def wait_for(self, count: int, settle: float = 3.0, timeout: float = 120.0) -> tuple[int, float]:
        """(depth, when it was reached): ``count``, or less if the queue stopped growing for ``settle`` s."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while True:
            try:
                depth = self.channel.queue_declare(self.queue, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:  # not declared yet
                self.channel = self.connection.channel()
                depth = 0
            now = time.monotonic()
            if depth != last:
                last, last_change = depth, now
            if depth >= count:
                return depth, now
            if now - last_change > settle and depth > 0:
                return depth, last_change
            if now > deadline:
                raise RuntimeError(f"{self.queue} did not reach {count} messages")
            time.sleep(0.005)


# -- (c) ---------------------------------------------------------------------------------


class TimedPublisher(Publisher):
    """apps.send's Publisher, timed from the open channel to the last confirm, like (b)."""

    ready_at: float | None = None
    done_at: float | None = None

    def on_ready(self) -> None:
        if self.ready_at is None:
            self.ready_at = time.monotonic()
        super().on_ready()

    def _on_confirm(self, frame) -> None:
        super()._on_confirm(frame)
        if self.done and self.done_at is None:
            self.done_at = time.monotonic()


def send_with_confirms(url: str, queue: QueueSettings, count: int, run_id: str) -> float:
    """Messages/s of apps.send's Publisher (default window), until the last confirm."""
    publisher = TimedPublisher(
        BrokerSettings(url=url, retry_seconds=10),
        queue,
        MessageSource(MessageFactory(run_id), count=count),
    )
    code = publisher.run()
    if code != 0 or publisher.confirmed < count or publisher.done_at is None:
        raise RuntimeError(f"apps.send exited {code} with {publisher.confirmed}/{count} confirmed")
    return count / (publisher.done_at - publisher.ready_at)


# -- (d) ---------------------------------------------------------------------------------


def auto_ack_consumer(url: str, queue: str, count: int) -> float:
    """Messages/s of a consumer with auto-ack (the broker forgets each message as it sends it)."""
    timing: dict[str, float] = {}
    received = 0

    def on_open(connection):
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel):
        timing["start"] = time.monotonic()
        channel.basic_consume(queue, on_message, auto_ack=True)

    def on_message(channel, method, properties, body):
        nonlocal received
        received += 1
        if received == count:
            timing["end"] = time.monotonic()
            channel.connection.close()

    run_until_closed(url, on_open)
    return count / (timing["end"] - timing["start"])


# -- (e) ---------------------------------------------------------------------------------


class TimedConsumer(Consumer):
    """apps.receive's Consumer, stopped (gracefully) once ``expect`` messages are processed."""

    def __init__(self, *args, expect: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.expect = expect
        self.consume_started: float | None = None
        self.done_at: float | None = None

    def on_ready(self) -> None:
        self.consume_started = time.monotonic()
        super().on_ready()

    def _on_message(self, *args) -> None:
        super()._on_message(*args)
        if self.processed >= self.expect and self.done_at is None:
            self.done_at = time.monotonic()
            self.request_stop()


def receive_with_acks(url: str, queue: QueueSettings, count: int, record: Path) -> float:
    """Messages/s of apps.receive's Consumer (defaults: prefetch 500, batched acks, --record)."""
    consumer = TimedConsumer(BrokerSettings(url=url, retry_seconds=10), queue, record=record, expect=count)
    code = consumer.run()
    consumer.close()
    if code != 0 or consumer.done_at is None:
        raise RuntimeError(f"apps.receive exited {code} after {consumer.processed}/{count} messages")
    return count / (consumer.done_at - consumer.consume_started)


# -- the run -----------------------------------------------------------------------------


def run(messages: int, seed_messages: int, rounds: int, queue_type: str, work_dir: Path) -> dict:
    coalesce_writes()  # what apps.send / apps.receive run with; (b) and (d) get it too
    with RabbitMQNode(data_dir=work_dir / "rabbitmq") as node:
        url = node.url
        print(f"broker up at {url}; {messages} messages per run, {rounds} rounds, {queue_type} queues")
        seed = seed_style(url, seed_messages)
        print(f"  (a) seed style        {seed:10.0f} msg/s  ({seed_messages} messages)")
        rates: dict[str, list[float]] = {"b": [], "c": [], "d": [], "e": []}
        ratios: dict[str, list[float]] = {"send": [], "receive": []}
        ff_lost = 0
        published: set[str] = set()
        received: set[str] = set()
        for round_no in range(1, rounds + 1):
            ff_queue = QueueSettings(f"bench-ff-{round_no}", queue_type)
            send_queue = QueueSettings(f"bench-send-{round_no}", queue_type)
            run_id = f"bench{round_no}"
            # (b) is drained by (d) before (c) starts, so both publishers meet an empty broker.
            ff_rate, queued = fire_and_forget(url, ff_queue, messages)
            ff_lost += messages - queued
            results = {"b": ff_rate, "d": auto_ack_consumer(url, ff_queue.name, queued)}
            results["c"] = send_with_confirms(url, send_queue, messages, run_id)
            record = work_dir / f"received-{round_no}.txt"
            results["e"] = receive_with_acks(url, send_queue, messages, record)
            published.update(message_id(run_id, n) for n in range(messages))
            received.update(record.read_text().split())
            print(
                f"  round {round_no}: (b) {results['b']:8.0f}  (c) {results['c']:8.0f}  "
                f"(d) {results['d']:8.0f}  (e) {results['e']:8.0f} msg/s"
            )
            for key, value in results.items():
                rates[key].append(value)
            ratios["send"].append(results["c"] / results["b"])
            ratios["receive"].append(results["e"] / results["d"])
    median = {key: statistics.median(values) for key, values in rates.items()}
    report = {
        "seed_style_msgs_per_s": round(seed, 1),
        "fire_and_forget_msgs_per_s": round(median["b"], 1),
        "send_msgs_per_s": round(median["c"], 1),
        "auto_ack_msgs_per_s": round(median["d"], 1),
        "receive_msgs_per_s": round(median["e"], 1),
        "messages": messages,
        "lost": len(published - received),
        "fire_and_forget_lost": ff_lost,
        "seed_style_messages": seed_messages,
        "rounds": rounds,
        "queue_type": queue_type,
        "cpus": os.cpu_count(),
        "send_vs_fire_and_forget": round(statistics.median(ratios["send"]), 3),
        "send_vs_seed_style": round(median["c"] / seed, 1),
        "receive_vs_auto_ack": round(statistics.median(ratios["receive"]), 3),
        "per_round": {key: [round(v, 1) for v in values] for key, values in rates.items()},
    }
    report["targets_met"] = {name: report[name] >= target for name, target in TARGETS.items()}
    report["targets_met"]["lost"] = report["lost"] == 0
    return report


def print_table(report: dict) -> None:
    rows = [
        ("(a) seed style: connection per message", report["seed_style_msgs_per_s"]),
        ("(b) fire-and-forget, one connection", report["fire_and_forget_msgs_per_s"]),
        ("(c) apps.send, confirms + persistence", report["send_msgs_per_s"]),
        ("(d) auto-ack consumer", report["auto_ack_msgs_per_s"]),
        ("(e) apps.receive, manual acks + record", report["receive_msgs_per_s"]),
    ]
    print()
    print(f"{'measurement (median of the rounds)':<42} {'msg/s':>10}")
    for name, value in rows:
        print(f"{name:<42} {value:>10.0f}")
    print()
    print(f"{'target':<42} {'actual':>10} {'wanted':>8}  met")
    met = report["targets_met"]
    for name, target in TARGETS.items():
        label = name.replace("_vs_", " / ").replace("_", " ")
        print(f"{label:<42} {report[name]:>10} {'>= ' + str(target):>8}  {'yes' if met[name] else 'NO'}")
    print(
        f"{'lost (sent by (c), never received by (e))':<42} {report['lost']:>10} {'== 0':>8}  "
        f"{'yes' if met['lost'] else 'NO'}"
    )
    print(f"{'(fire-and-forget never queued by the broker)':<42} {report['fire_and_forget_lost']:>10}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.messaging", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages per run of (b)-(e) (100000)")
    parser.add_argument("--seed-messages", type=int, default=300, help="messages for (a) (300)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of (b)-(e); medians are reported (5)")
    parser.add_argument("--queue-type", choices=("quorum", "classic"), default="quorum")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench" / "messaging.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)

    with tempfile.TemporaryDirectory(prefix="seaport-bench-") as work_dir:
        report = run(args.messages, args.seed_messages, args.rounds, args.queue_type, Path(work_dir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwritten to {args.out.relative_to(REPO_ROOT) if args.out.is_relative_to(REPO_ROOT) else args.out}")
    return 0 if all(report["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
