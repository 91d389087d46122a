"""Messaging throughput: the 2017 way, the naive fast way, and apps.send / apps.receive.

``python -m benchmarks.messaging`` (``make bench``) starts two throwaway RabbitMQ
nodes and, against them, measures:

  (a) seed style: a new connection per message, as the original send.py did
      (non-durable classic queue, transient message; fewer messages, it is slow);
  (b) fire-and-forget: one connection, no confirms, persistent messages to a
      queue of the same type as (c), timed until the broker holds all of them;
  (c) apps.send: persistent messages, publisher confirms, bounded window, timed
      until the last confirm (the apps' own Publisher);
  (d) an auto-ack consumer draining (b)'s queue;
  (e) apps.receive: prefetch, manual acks after processing, every id recorded
      to a file and flushed before its ack, draining (c)'s queue.

(b) and (c) publish the same messages (apps.send's bodies and properties, built
as they go) over the same pika transport, so the ratio is the price of
confirms; (d) and (e) drain the same number of the same messages.

A round publishes in two pairs, (b) with (c), then (c) with (b), each run
``--messages`` messages (seconds of its own) to its own queue. Publishing is
bound by the broker, which goes on with a publisher's backlog whatever the
client does, so each run of a pair has a broker node of its own (two nodes,
swapping sides between the pairs) and a process of its own
(benchmarks.publish_leg), and the two take turns on the whole machine every
``--publish-slice`` seconds: the run holding it goes on while the other's
client and node are stopped (SIGSTOP; benchmarks.freezing). Then the round
drains the queues in two pairs, (d) with (e), then (e) with (d), the two
consumers of a pair taking turns on the client core every ``--drain-slice``
seconds (benchmarks.turns). Each run is timed over the seconds it held the
machine (or the client core). Both ways, the two runs of a pair run on the
same machine, whose core speed here switches between two levels within a
second or so: run one after the other for seconds each, their ratio moved by
10 % from round to round; in turns, by 1-4 %. The median of the ``--rounds``
rounds' ratios is reported (the machine is shared: a single best or worst
round says more about the neighbours than about the code). ``lost`` is the ids
(c) confirmed that (e) never recorded. Fire-and-forget has no such guarantee:
what the broker never queued of (b) is reported as ``fire_and_forget_lost``.

How far the figures can be trusted is measured too: the rounds form two
interleaved series (even and odd rounds), whose medians are compared
(``series_spread``), and the ratios are compared with those of the previous run
(the report this run replaces; ``spread_vs_previous``). Both should stay within
5 %. How steady the machine itself was is measured just before the rounds
(``cpu_steadiness``: a fixed loop on the clients' core, timed over one-second
windows): what runs taking turns no longer feel. Client and broker CPU time per
message of each of (b)-(e) say where the cost is (each run of a pair has its
own broker node).

apps.send and apps.receive run with the settings they would read from the
environment (``SEND_WINDOW``, ``RECEIVE_PREFETCH``, ``RECEIVE_ACK_EVERY``,
``PIKA_COALESCE_WRITES``; their defaults otherwise), where the benchmarks set
``RECEIVE_PREFETCH=2000`` unless it is set (benchmarks.common.APP_TUNING); the
report lists them. The broker nodes get one core (and one Erlang scheduler each)
and the clients another (as deployed, the broker has its own machine;
``--no-pin`` shares them).

Writes build/bench/messaging.json, prints a table, exits 1 if a target is missed:
send >= 0.9 x fire-and-forget, send >= 50 x seed style, receive >= 0.85 x
auto-ack, lost == 0, and (when there is a previous run) both ratios within 5 %
of the previous run's.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import pika

from apps.common.config import env_int
from apps.common.pika_tuning import coalesce_writes
from apps.common.rabbitmq import QUEUE_TYPES, BrokerSettings, QueueSettings, declare_queues
from apps.receive.consumer import Consumer
from apps.send.messages import MessageFactory, MessageSource, message_id
from apps.send.publisher import Publisher
from benchmarks.common import (
    AGREEMENT,
    BENCH_DIR,
    RATIOS,
    apply_app_tuning,
    cpu_steadiness,
    group_cpu,
    load_previous,
    machine,
    median,
    now_utc,
    pin_group,
    spread,
    write_report,
)
from benchmarks.freezing import SLICE_SECONDS as PUBLISH_SLICE_SECONDS
from benchmarks.freezing import Freezer, Leg
from benchmarks.turns import ALONE, SLICE_SECONDS, Turn, Turns
from devtools.rabbitmq import RabbitMQNode

TARGETS = {
    "send_vs_fire_and_forget": 0.9,
    "send_vs_seed_style": 50.0,
    "receive_vs_auto_ack": 0.85,
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


def fire_and_forget(url: str, queue: QueueSettings, count: int, chunk: int = 1000) -> tuple[float, float, int]:
    """(start, end, messages queued) publishing without confirms on one connection: from the open channel
    until the queue stops growing (``time.monotonic()``).

    Without confirms nothing says a message arrived: the rate counts what the broker queued. The connection
    stays open until then: closed at once, it can take with it what the queue has not taken in yet (seen on
    RabbitMQ 3.10 with quorum queues, on a loaded machine: a few dozen of 3,000 messages).
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
            # Qos-Ok comes back once the broker's channel has handled every publish before it.
            channel.basic_qos(prefetch_count=0, callback=lambda _frame: channel.connection.ioloop.stop())
        else:
            channel.connection.ioloop.call_later(0, lambda: publish_chunk(channel))  # let the loop write

    # Opened before the clock starts, so checking the depth costs no connection setup.
    with QueueDepth(url, queue.name) as depth:
        connection = open_connection(url, on_open)
        connection.ioloop.start()  # until Qos-Ok
        queued, reached_at = depth.wait_for(count)
        connection.close()
        connection.ioloop.start()  # until closed
    return timing["start"], reached_at, queued


def run_until_closed(url: str, on_open) -> None:
    """Open an asynchronous connection and run its loop until the callbacks close it."""
    open_connection(url, on_open).ioloop.start()


def open_connection(url: str, on_open) -> pika.SelectConnection:
    """An asynchronous connection whose loop stops when it closes (start it with ``connection.ioloop.start()``)."""
    return pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=on_open,
        on_open_error_callback=on_open_error,
        on_close_callback=lambda conn, _reason: conn.ioloop.stop(),
    )


def on_open_error(_connection, error):
    raise RuntimeError(f"cannot connect to the benchmark broker: {error!r}")


class QueueDepth:
    """Polls a queue's message count over one connection."""

    def __init__(self, url: str, queue: str, clock=time.monotonic):
        self.url = url
        self.queue = queue
        self.clock = clock

    def __enter__(self) -> QueueDepth:
        self.connection = pika.BlockingConnection(pika.URLParameters(self.url))
        self.channel = self.connection.channel()
        return self

    def __exit__(self, *exc) -> None:
        self.connection.close()

    def wait_for(self, count: int, settle: float = 10.0, timeout: float = 120.0) -> tuple[int, float]:
        """(depth, when it was reached): ``count``, or less if the queue stopped growing for ``settle`` s.

        The queue stopped growing if two answers to questions asked ``settle`` s apart are the same: an answer
        read late (this process stopped meanwhile, benchmarks.freezing) still tells the depth when it was asked.
        """
        deadline = self.clock() + timeout
        last, last_change = -1, self.clock()
        while True:
            asked_at = self.clock()
            try:
                depth = self.channel.queue_declare(self.queue, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:  # not declared yet
                self.channel = self.connection.channel()
                depth = 0
            now = self.clock()
            if depth != last:
                last, last_change = depth, asked_at
            if depth >= count:
                return depth, now
            if asked_at - last_change > settle and depth > 0:
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


def send_with_confirms(url: str, queue: QueueSettings, count: int, run_id: str, window: int | None = None) -> float:
    """Messages/s of apps.send's Publisher (its default window unless given), until the last confirm."""
    start, end = timed_send(url, queue, count, run_id, window)
    return count / (end - start)


def timed_send(
    url: str, queue: QueueSettings, count: int, run_id: str, window: int | None = None
) -> tuple[float, float]:
    """(start, end) of apps.send's Publisher (its default window unless given): from the open channel to the
    last confirm (``time.monotonic()``)."""
    publisher = TimedPublisher(
        BrokerSettings(url=url, retry_seconds=10),
        queue,
        MessageSource(MessageFactory(run_id), count=count),
        **({"window": window} if window else {}),
    )
    code = publisher.run()
    if code != 0 or publisher.confirmed < count or publisher.done_at is None:
        raise RuntimeError(f"apps.send exited {code} with {publisher.confirmed}/{count} confirmed")
    return publisher.ready_at, publisher.done_at


# -- (d) ---------------------------------------------------------------------------------


def auto_ack_consumer(url: str, queue: str, count: int, turn: Turn = ALONE) -> float:
    """Messages/s of a consumer with auto-ack (the broker forgets each message as it sends it), timed in ``turn``."""
    timing: dict[str, float] = {}
    received = 0

    def on_open(connection):
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel):
        timing["start"] = time.monotonic()
        channel.basic_consume(queue, on_message, auto_ack=True)
        turn.take_turns(channel.connection.ioloop)

    def on_message(channel, method, properties, body):
        nonlocal received
        received += 1
        if received == count:
            timing["end"] = time.monotonic()
            channel.connection.close()

    run_until_closed(url, on_open)
    return count / turn.elapsed(timing["start"], timing["end"])


# -- (e) ---------------------------------------------------------------------------------


class TimedConsumer(Consumer):
    """apps.receive's Consumer, timed until ``expect`` messages are processed and acked, then stopped gracefully.

    The count is checked where acks are sent (every ``ack_every`` messages, or at the end of a burst), not
    per message: the benchmark should not add a call to every delivery of what it measures."""

    def __init__(self, *args, expect: int, turn: Turn = ALONE, **kwargs):
        super().__init__(*args, **kwargs)
        self.expect = expect
        self.turn = turn
        self.consume_started: float | None = None
        self.done_at: float | None = None

    def on_ready(self) -> None:
        self.consume_started = time.monotonic()
        super().on_ready()
        self.turn.take_turns(self.connection.ioloop)

    def _flush_acks(self) -> None:
        super()._flush_acks()
        if self.processed >= self.expect and self.done_at is None:
            self.done_at = time.monotonic()
            self.request_stop()


def receive_with_acks(
    url: str,
    queue: QueueSettings,
    count: int,
    record: Path,
    prefetch: int | None = None,
    ack_every: int | None = None,
    turn: Turn = ALONE,
) -> float:
    """Messages/s of apps.receive's Consumer (its defaults unless given: prefetch, batched acks), with --record,
    timed in ``turn``."""
    consumer = TimedConsumer(
        BrokerSettings(url=url, retry_seconds=10),
        queue,
        record=record,
        expect=count,
        turn=turn,
        ack_every=ack_every,
        **({"prefetch": prefetch} if prefetch else {}),
    )
    code = consumer.run()
    consumer.close()
    if code != 0 or consumer.done_at is None:
        raise RuntimeError(f"apps.receive exited {code} after {consumer.processed}/{count} messages")
    return count / turn.elapsed(consumer.consume_started, consumer.done_at)


# -- the run -----------------------------------------------------------------------------


def app_settings() -> dict:
    """What apps.send and apps.receive run with here: their variables, else their own defaults."""
    window = inspect.signature(Publisher.__init__).parameters["window"].default
    prefetch = inspect.signature(Consumer.__init__).parameters["prefetch"].default
    return {
        "app_defaults": {"send_window": window, "receive_prefetch": prefetch},
        "send_window": env_int("SEND_WINDOW", window, minimum=1, maximum=65535),
        "receive_prefetch": env_int("RECEIVE_PREFETCH", prefetch, minimum=1, maximum=65535),
        "receive_ack_every": env_int("RECEIVE_ACK_EVERY", 0, minimum=0) or None,  # None: the Consumer's rule
        "coalesce_writes": coalesce_writes(),  # what apps.send / apps.receive run with; (b) and (d) get it too
    }


def delete_queues(url: str, *queues: QueueSettings) -> None:
    """Delete drained queues (and their dead-letter queues), so rounds leave nothing behind in the broker."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_delete(queue.name)
            channel.queue_delete(queue.dead_letter_queue)
    finally:
        connection.close()


# A round publishes in two pairs, (b) with (c) and then (c) with (b), each leg to a queue on a broker node of
# its own (the nodes swap sides between the pairs), taking turns on the machine; then it drains the same
# queues in two pairs, (d) with (e) and then (e) with (d), taking turns on the client core.
PUBLISH = (("b", "c"), ("c", "b"))
DRAIN = (("d", "e"), ("e", "d"))
NODE_OF = ({"b": 0, "c": 1}, {"b": 1, "c": 0})  # pair i: the node of each side's i-th queue
SIDE = {"b": "b", "c": "c", "d": "b", "e": "c"}  # (d) drains (b)'s queues, (e) drains (c)'s


def run_round(nodes: list[RabbitMQNode], round_no: int, messages: int, queue_type: str, work_dir: Path, settings):
    """One round: (b) with (c) and (c) with (b), then (d) with (e) and (e) with (d) draining them; rates, CPU per
    message (the client's, and the broker node's: each leg of a pair has its own), ids.

    Publishing is bound by the broker, which goes on with a publisher's backlog whatever the client does, so a
    pair's legs each have a node of their own and take turns on the whole machine (benchmarks.freezing): while
    one leg's client and node run, the other's are stopped, for ``settings["publish_slice_s"]`` at a time.
    Draining is bound by the client's core, so (d) and (e) take turns on it in slices of
    ``settings["drain_slice_s"]`` (benchmarks.turns). Either way both legs of a pair run on the same machine,
    whose speed here changes within a second. A round's rate of a side is the mean of its two runs."""
    ff_queues = [QueueSettings(f"bench-ff-{round_no}-{i}", queue_type) for i in (1, 2)]
    send_queues = [QueueSettings(f"bench-send-{round_no}-{i}", queue_type) for i in (1, 2)]
    queues = {"b": ff_queues, "c": send_queues}
    run_ids = [f"bench{round_no}x{i}" for i in (1, 2)]
    records = [work_dir / f"received-{round_no}-{i}.txt" for i in (1, 2)]
    runs: dict[str, list[float]] = {key: [] for key in "bcde"}
    client_us: dict[str, list[float]] = {key: [] for key in "bcde"}
    broker_us: dict[str, list[float]] = {key: [] for key in "bcde"}
    queued = [0, 0]
    prefetch, ack_every = settings["receive_prefetch"], settings["receive_ack_every"]

    def node(key: str, i: int) -> RabbitMQNode:
        return nodes[NODE_OF[i][SIDE[key]]]

    def note(key: str, rate: float, count: int, client_s: float, broker_s: float) -> None:
        runs[key].append(rate)
        client_us[key].append(client_s / count * 1e6)
        broker_us[key].append(broker_s / count * 1e6)

    def drain(key: str, i: int, turn: Turn) -> tuple[float, int, float]:
        """(rate, messages, client CPU seconds) of (d) or (e) on the i-th queue of its side."""
        cpu = time.thread_time()  # this leg's thread only: the other leg of the pair runs in another
        if key == "d":
            rate, count = auto_ack_consumer(node(key, i).url, ff_queues[i].name, queued[i], turn), queued[i]
        else:
            rate = receive_with_acks(node(key, i).url, send_queues[i], messages, records[i], prefetch, ack_every, turn)
            count = messages
        return rate, count, time.thread_time() - cpu

    for i, order in enumerate(PUBLISH):
        legs = [
            Leg(
                key,
                publish_command(key, node(key, i).url, queues[key][i], messages, run_ids[i], settings),
                node(key, i).process.pid,
            )
            for key in order
        ]
        broker = {key: group_cpu(node(key, i).process.pid) for key in order}
        pair = Freezer(settings["publish_slice_s"]).run(legs, work_dir)
        for key in order:
            result = pair[key].result
            count = result["messages"]  # (b): what the broker queued
            if key == "b":
                queued[i] = count
            rate = count / pair[key].elapsed(result["start"], result["end"])
            note(key, rate, count, result["cpu_s"], group_cpu(node(key, i).process.pid) - broker[key])
    for i, order in enumerate(DRAIN):
        broker = {key: group_cpu(node(key, i).process.pid) for key in order}
        legs = {key: (lambda turn, key=key, i=i: drain(key, i, turn)) for key in order}
        pair = Turns(settings["drain_slice_s"]).run(legs)
        for key in order:
            note(key, *pair[key], group_cpu(node(key, i).process.pid) - broker[key])
    for i in (0, 1):
        delete_queues(node("b", i).url, ff_queues[i])
        delete_queues(node("c", i).url, send_queues[i])
    return {
        "rates": {key: sum(values) / len(values) for key, values in runs.items()},
        "runs": runs,
        "client_us": {key: sum(values) / len(values) for key, values in client_us.items()},
        "broker_us": {key: sum(values) / len(values) for key, values in broker_us.items()},
        "ff_lost": 2 * messages - sum(queued),
        "published": {message_id(run_id, n) for run_id in run_ids for n in range(messages)},
        "received": set().union(*(set(record.read_text().split()) for record in records)),
    }


def publish_command(key: str, url: str, queue: QueueSettings, count: int, run_id: str, settings) -> list[str]:
    """The command of one publishing leg (benchmarks.publish_leg), with the settings apps.send runs with."""
    coalesce = "on" if settings["coalesce_writes"] else "off"
    window = str(settings["send_window"])
    return [
        sys.executable,
        "-m",
        "benchmarks.publish_leg",
        key,
        url,
        queue.name,
        queue.queue_type,
        str(count),
        run_id,
        window,
        coalesce,
    ]


def ratios_of(rates: dict[str, float]) -> dict[str, float]:
    return {"send_vs_fire_and_forget": rates["c"] / rates["b"], "receive_vs_auto_ack": rates["e"] / rates["d"]}


def run(
    messages: int,
    seed_messages: int,
    rounds: int,
    queue_type: str,
    work_dir: Path,
    previous: dict | None,
    pin: bool,
    drain_slice: float = SLICE_SECONDS,
    publish_slice: float = PUBLISH_SLICE_SECONDS,
):
    settings = app_settings()
    settings["drain_slice_s"] = drain_slice
    settings["publish_slice_s"] = publish_slice
    started = time.monotonic()
    load_before = os.getloadavg()[0]  # what else runs on the machine (this benchmark has not started yet)
    cpus = sorted(os.sched_getaffinity(0))
    settings["pinned"] = pin and len(cpus) >= 2
    # Pinned, the broker has one core and gets one Erlang scheduler, as on a one-core machine (a scheduler per
    # core, by default: here two would share the core and wake each other for the work they steal).
    settings["broker_schedulers"] = 1 if settings["pinned"] else len(cpus)
    with contextlib.ExitStack() as stack:
        # Two nodes: a pair of publishing legs has one each (see run_round).
        nodes = [
            RabbitMQNode(data_dir=work_dir / f"rabbitmq-{n}", schedulers=settings["broker_schedulers"]) for n in (1, 2)
        ]
        for node in nodes:
            stack.callback(node.close)
            node.start()
        for node in nodes:
            node.wait_ready()
        if settings["pinned"]:
            # As deployed, the broker has its own machine: here the nodes get one core and the clients another.
            for node in nodes:
                pin_group(node.process.pid, {cpus[-1]})
            os.sched_setaffinity(0, {cpus[0]})
        print(
            f"brokers up at {nodes[0].url} and {nodes[1].url}; {rounds} rounds of {messages} messages per run, "
            f"{queue_type} queues; send window {settings['send_window']}, receive prefetch "
            f"{settings['receive_prefetch']}; (b) and (c) take turns every {publish_slice * 1000:g} ms, (d) and (e) "
            f"every {drain_slice * 1000:g} ms"
        )
        steadiness = cpu_steadiness()  # on the clients' core, just before the rounds
        print(
            f"  the clients' core ran a fixed loop at {steadiness['slowest_vs_median']:.2f}-"
            f"{steadiness['fastest_vs_median']:.2f} x its median speed over {steadiness['windows']} 1-s windows"
        )
        seed = seed_style(nodes[0].url, seed_messages)
        print(f"  (a) seed style        {seed:10.0f} msg/s  ({seed_messages} messages)")
        results = []
        for round_no in range(rounds):
            result = run_round(nodes, round_no, messages, queue_type, work_dir, settings)
            results.append(result)
            rates, ratios = result["rates"], ratios_of(result["rates"])
            print(
                f"  round {round_no + 1:>2}/{rounds}: (b) {rates['b']:7.0f}  (c) {rates['c']:7.0f}  "
                f"(d) {rates['d']:7.0f}  (e) {rates['e']:7.0f} msg/s   "
                f"c/b {ratios['send_vs_fire_and_forget']:.3f}  e/d {ratios['receive_vs_auto_ack']:.3f}"
                f"   [{time.monotonic() - started:4.0f} s]",
                flush=True,
            )
        version = rabbitmq_version(nodes[0])
    figures = report(results, seed, settings, messages, seed_messages, rounds, queue_type, version, previous)
    figures["load_average_before"] = round(load_before, 2)
    figures["cpu_steadiness"] = steadiness
    return figures


def rabbitmq_version(node: RabbitMQNode) -> str:
    try:
        return node.ctl("version").strip()
    except Exception:
        return "unknown"


def report(results, seed, settings, messages, seed_messages, rounds, queue_type, version, previous) -> dict:
    per_round = {key: [r["rates"][key] for r in results] for key in "bcde"}
    ratio_rounds = {name: [ratios_of(r["rates"])[name] for r in results] for name in RATIOS}
    rate = {key: median(values) for key, values in per_round.items()}
    published = set().union(*(r["published"] for r in results))
    received = set().union(*(r["received"] for r in results))
    series = {
        label: {name: round(median(values[start::2]), 3) for name, values in ratio_rounds.items()}
        for label, start in (("even_rounds", 0), ("odd_rounds", 1))
        if rounds > start
    }
    report = {
        "finished_at": now_utc(),
        "seed_style_msgs_per_s": round(seed, 1),
        "fire_and_forget_msgs_per_s": round(rate["b"], 1),
        "send_msgs_per_s": round(rate["c"], 1),
        "auto_ack_msgs_per_s": round(rate["d"], 1),
        "receive_msgs_per_s": round(rate["e"], 1),
        "send_vs_fire_and_forget": round(median(ratio_rounds["send_vs_fire_and_forget"]), 3),
        "send_vs_seed_style": round(rate["c"] / seed, 1),
        "receive_vs_auto_ack": round(median(ratio_rounds["receive_vs_auto_ack"]), 3),
        "lost": len(published - received),
        "fire_and_forget_lost": sum(r["ff_lost"] for r in results),
        "messages": messages,
        "seed_style_messages": seed_messages,
        "rounds": rounds,
        "queue_type": queue_type,
        "rabbitmq": version,
        "settings": settings,
        "series": series,
        "series_spread": (
            {name: round(spread(series["even_rounds"][name], series["odd_rounds"][name]), 3) for name in RATIOS}
            if len(series) == 2
            else None
        ),
        "previous_run": None,
        "spread_vs_previous": None,
        "cpu_us_per_msg": {
            side: {key: round(median([r[f"{side}_us"][key] for r in results]), 1) for key in "bcde"}
            for side in ("client", "broker")
        },
        "per_round": {
            **{key: [round(v, 1) for v in values] for key, values in per_round.items()},
            "runs": [{key: [round(v) for v in r["runs"][key]] for key in "bcde"} for r in results],
            **{name: [round(v, 3) for v in values] for name, values in ratio_rounds.items()},
        },
        "machine": machine(),
    }
    # A run on another broker release (make bench RABBITMQ=...) measured something else: not compared.
    if previous and previous.get("rabbitmq") != version:
        report["previous_run_other_broker"] = previous.get("rabbitmq")
    elif previous and all(isinstance(previous.get(name), int | float) for name in RATIOS):
        report["previous_run"] = {key: previous.get(key) for key in ("finished_at", *RATIOS)}
        report["spread_vs_previous"] = {name: round(spread(report[name], previous[name]), 3) for name in RATIOS}
    report["targets_met"] = {name: report[name] >= target for name, target in TARGETS.items()}
    report["targets_met"]["lost"] = report["lost"] == 0
    if report["spread_vs_previous"] is not None:
        report["targets_met"]["agrees_with_previous_run"] = all(
            value <= AGREEMENT for value in report["spread_vs_previous"].values()
        )
    return report


def print_table(report: dict) -> None:
    rows = [
        ("(a) seed style: connection per message", report["seed_style_msgs_per_s"]),
        ("(b) fire-and-forget, one connection", report["fire_and_forget_msgs_per_s"]),
        ("(c) apps.send, confirms + persistence", report["send_msgs_per_s"]),
        ("(d) auto-ack consumer", report["auto_ack_msgs_per_s"]),
        ("(e) apps.receive, manual acks + record", report["receive_msgs_per_s"]),
    ]
    cpu = report["cpu_us_per_msg"]
    print()
    print(f"{'measurement (median of the rounds)':<42} {'msg/s':>10} {'CPU us/msg: client':>19} {'broker':>7}")
    for (name, value), key in zip(rows, " bcde", strict=True):
        costs = f"{cpu['client'][key]:>19.1f} {cpu['broker'][key]:>7.1f}" if key != " " else ""
        print(f"{name:<42} {value:>10.0f} {costs}")
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
    print()
    print("how stable the ratios are (spread: difference / mean; agreement wanted within 5 %):")
    if report["series_spread"] is not None:
        series = report["series"]
        for name in RATIOS:
            print(
                f"  {name:<26} even rounds {series['even_rounds'][name]:.3f}  odd rounds "
                f"{series['odd_rounds'][name]:.3f}  spread {report['series_spread'][name]:6.1%}"
            )
    if report.get("previous_run_other_broker"):
        print(f"  the previous run was on RabbitMQ {report['previous_run_other_broker']}: not compared")
    elif report["spread_vs_previous"] is None:
        print("  no previous run to compare with (run `make bench` again to see how two runs agree)")
    else:
        previous = report["previous_run"]
        for name in RATIOS:
            print(
                f"  {name:<26} this run {report[name]:.3f}  previous run ({previous['finished_at']}) "
                f"{previous[name]:.3f}  spread {report['spread_vs_previous'][name]:6.1%}"
            )
        agrees = met["agrees_with_previous_run"]
        print(f"  {'agrees with the previous run within 5 %':<42} {'yes' if agrees else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.messaging", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=60_000, help="messages per run of (b)-(e) (60000)")
    parser.add_argument("--seed-messages", type=int, default=300, help="messages for (a) (300)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds of (b)-(e); medians are reported (8)")
    parser.add_argument("--queue-type", choices=QUEUE_TYPES, default="quorum")
    parser.add_argument(
        "--drain-slice",
        type=float,
        default=SLICE_SECONDS,
        help=f"seconds (d) and (e) hold the client core before handing it on ({SLICE_SECONDS})",
    )
    parser.add_argument(
        "--publish-slice",
        type=float,
        default=PUBLISH_SLICE_SECONDS,
        help=f"seconds (b) and (c), each with its broker node, hold the machine before handing it on "
        f"({PUBLISH_SLICE_SECONDS})",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="let broker and clients share every core (default: one core each)"
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "messaging.json")
    args = parser.parse_args(argv)
    for option in ("drain_slice", "publish_slice"):
        if not getattr(args, option) > 0:
            parser.error(f"--{option.replace('_', '-')} must be a number of seconds > 0, got {getattr(args, option)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)

    tuned = apply_app_tuning()
    previous = load_previous(args.out)
    with tempfile.TemporaryDirectory(prefix="seaport-bench-") as work_dir:
        report = run(
            args.messages,
            args.seed_messages,
            args.rounds,
            args.queue_type,
            Path(work_dir),
            previous,
            not args.no_pin,
            args.drain_slice,
            args.publish_slice,
        )
    report["settings"]["set_by_benchmark"] = tuned
    print_table(report)
    write_report(args.out, report)
    return 0 if all(report["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
