"""apps.send and apps.receive against a real broker: every message arrives, whatever fails."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pika
import pytest

from tests.apps.helpers import expected_ids, log_records, read_ids, wait_until

pytestmark = pytest.mark.rabbitmq


def start_receiver(messaging, record, *args):
    receiver = messaging.receive("--record", str(record), *args)
    messaging.wait_logged(receiver, "consuming")
    return receiver


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_round_trip_every_id_once(messaging, tmp_path, queue_type):
    messaging.queue_type = queue_type
    record = tmp_path / "received.txt"
    # No idle exit: on a busy machine the sender may take longer to start than any idle time; stop it instead.
    receiver = start_receiver(messaging, record)
    sender = messaging.send("--count", "3000", "--run-id", "rt")

    assert messaging.wait_exit(sender, 60) == 0, sender.output()
    wait_until(lambda: len(read_ids(record)) >= 3000, 60, "every message to be received")
    assert receiver.stop() == 0, receiver.output()
    received = read_ids(record)
    assert sorted(received) == sorted(expected_ids("rt", 3000))  # each id exactly once
    assert messaging.summary(sender)["confirmed"] == 3000
    assert messaging.depth() == 0
    assert messaging.depth(f"{messaging.queue}.dead") == 0


@pytest.mark.parametrize("how", ["sigkill", "graceful"])
def test_broker_restarted_mid_send(messaging, broker, tmp_path, how):
    count = 20_000
    record = tmp_path / "received.txt"
    receiver = start_receiver(messaging, record, "--idle-exit", "3")
    declared_at = time.monotonic()
    # A rate keeps the send going for ~4 s, so the crash lands in the middle of it.
    sender = messaging.send("--count", str(count), "--rate", "5000", "--run-id", "crash")

    wait_until(lambda: len(read_ids(record)) >= 3000, 30, "the receiver to get 3000 messages")
    # RabbitMQ 3.10 registers a new quorum queue on disk lazily (within a second);
    # a crash before that loses the queue itself, which no client can help.
    time.sleep(max(0.0, 2.0 - (time.monotonic() - declared_at)))
    assert sender.process.poll() is None, "the send finished before the broker went down"
    if how == "sigkill":
        broker.kill()
    else:
        broker.stop()  # connections are closed by the broker (CONNECTION_FORCED)
    time.sleep(1.0)  # both apps now retry against a closed port
    broker.start().wait_ready()

    assert messaging.wait_exit(sender, 90) == 0, sender.output()
    missing = lambda: expected_ids("crash", count) - set(read_ids(record))  # noqa: E731
    wait_until(lambda: not missing(), 30, "every id to be received")
    assert messaging.wait_exit(receiver, 30) == 0, receiver.output()

    sender_log = [r["message"] for r in log_records(sender.output())]
    assert "connection to the broker lost" in sender_log
    assert sender_log.count("connected") >= 2
    receiver_log = [r["message"] for r in log_records(receiver.output())]
    assert receiver_log.count("connected") >= 2
    assert messaging.summary(sender)["confirmed"] >= count


def sequence(message_id: str) -> int:
    return int(message_id.rsplit("-", 1)[1])


def test_queue_deleted_mid_send_loses_only_what_it_held(messaging):
    """Messages the broker hands back as unroutable are published again, not counted as delivered."""
    count = 3000
    # Classic: on 3.10, deleting a quorum queue under a publisher may instead fail its
    # connection (INTERNAL_ERROR), which the sender survives by republishing, but
    # then nothing is handed back and this test would not exercise the return path.
    messaging.queue_type = "classic"
    messaging.declare()
    sender = messaging.send("--count", str(count), "--rate", "1000", "--run-id", "gone")
    wait_until(lambda: messaging.depth() >= 500, 30, "500 messages in the queue")
    connection, channel = messaging.channel()
    try:
        held = channel.queue_delete(messaging.queue).method.message_count  # an operator deletes the queue
    finally:
        connection.close()
    assert messaging.wait_exit(sender, 60) == 0, sender.output()

    assert 500 <= held < count, "the queue was deleted after the send had finished"
    returned = {r["message_id"] for r in log_records(sender.output()) if r["message"].startswith("message returned")}
    assert returned, "no message was handed back as unroutable"
    # The deleted queue took the first ids with it (those it held, and those being
    # routed into it as it went). Every later id, including each one handed back
    # as unroutable, must be in the queue the sender declared again: no gaps.
    arrived = {properties.message_id for properties, _body in messaging.get_all(messaging.queue)}
    first = min(map(sequence, arrived))
    assert held <= first <= min(map(sequence, returned))
    assert arrived == {f"gone-{n}" for n in range(first, count)}
    assert returned <= arrived
    summary = messaging.summary(sender)
    assert summary["returned"] == len(returned) and summary["republished"] >= len(returned)
    assert summary["confirmed"] == count


def test_receiver_killed_mid_stream_and_restarted(messaging, tmp_path):
    count = 20_000
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    receiver = start_receiver(messaging, first, "--work-ms", "0.05")
    sender = messaging.send("--count", str(count), "--run-id", "kill")

    wait_until(lambda: len(read_ids(first)) >= 2000, 30, "the first receiver to get 2000 messages")
    receiver.kill()
    messaging.wait_exit(receiver, 10)
    got_before_kill = set(read_ids(first))
    assert len(got_before_kill) < count, "the receiver finished before it was killed"

    replacement = start_receiver(messaging, second, "--idle-exit", "1.5")
    assert messaging.wait_exit(sender, 60) == 0, sender.output()
    assert messaging.wait_exit(replacement, 60) == 0, replacement.output()
    received = set(read_ids(first, second))
    assert expected_ids("kill", count) - received == set()
    assert messaging.depth() == 0


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_poison_message_dead_lettered_after_retry_limit(messaging, tmp_path, queue_type):
    messaging.queue_type = queue_type
    messaging.max_deliveries = 3
    messaging.load_definitions()  # what the infrastructure loads: the queues and their policy
    record = tmp_path / "received.txt"
    receiver = start_receiver(messaging, record)
    poison = messaging.send("--count", "2", "--run-id", "poison", "--poison")
    good = messaging.send("--count", "50", "--run-id", "good")
    assert messaging.wait_exit(poison, 30) == 0, poison.output()
    assert messaging.wait_exit(good, 30) == 0, good.output()

    dead_letter_queue = f"{messaging.queue}.dead"
    wait_until(lambda: messaging.depth(dead_letter_queue) == 2, 30, "2 messages in the dead-letter queue")
    wait_until(lambda: len(read_ids(record)) >= 50, 30, "the good messages")
    time.sleep(0.5)  # nothing more may happen to the poison messages
    assert receiver.stop() == 0

    assert sorted(read_ids(record)) == sorted(expected_ids("good", 50))
    dead = messaging.get_all(dead_letter_queue)
    assert sorted(properties.message_id for properties, _body in dead) == ["poison-0", "poison-1"]
    assert all(properties.headers["x-death"][0]["reason"] == "rejected" for properties, _ in dead)
    failures = [r for r in log_records(receiver.output()) if r["message"].startswith("processing failed")]
    for message_id in ("poison-0", "poison-1"):
        attempts = [r["attempt"] for r in failures if r["message_id"] == message_id]
        assert attempts == [1, 2, 3], f"{message_id}: {attempts}"
    assert messaging.depth() == 0


def test_broker_policy_dead_letters_a_message_that_keeps_crashing_its_consumer(messaging):
    """The policy's delivery limit and dead-letter target act in the broker, with no help from receive."""
    messaging.max_deliveries = 2
    messaging.load_definitions()
    connection, channel = messaging.channel()
    try:
        channel.basic_publish("", messaging.queue, b"{}", pika.BasicProperties(message_id="crasher"))
    finally:
        connection.close()
    deliveries = 0
    while deliveries < 10:
        connection, channel = messaging.channel()
        method, _properties, _body = channel.basic_get(messaging.queue)  # then "crash": close unacked
        connection.close()
        if method is None:
            break
        deliveries += 1
    assert deliveries == 3  # the first delivery and two redeliveries (3.10: every return counts)
    dead = wait_until(lambda: messaging.get_all(f"{messaging.queue}.dead"), 10, "the dead letter")
    assert [properties.message_id for properties, _body in dead] == ["crasher"]
    assert dead[0][0].headers["x-death"][0]["reason"] == "delivery_limit"


def test_full_queue_refuses_messages_and_send_publishes_them_again(messaging, tmp_path):
    """overflow reject-publish (needed by at-least-once dead-lettering): a nack is 'not delivered'."""
    count = 500
    messaging.load_definitions(max_length=100)
    sender = messaging.send("--count", str(count), "--run-id", "full")
    messaging.wait_logged(sender, "the broker refused messages (queue full?); publishing them again after a pause")
    assert sender.process.poll() is None, "send finished although the queue was full"
    record = tmp_path / "received.txt"
    receiver = start_receiver(messaging, record)

    assert messaging.wait_exit(sender, 60) == 0, sender.output()
    every_id = expected_ids("full", count)
    wait_until(lambda: every_id <= set(read_ids(record)), 30, "every id to be received")
    assert receiver.stop() == 0
    assert set(read_ids(record)) == every_id
    summary = messaging.summary(sender)
    assert summary["nacked"] > 0 and summary["confirmed"] == count


def test_sigterm_both_exit_zero_and_nothing_is_lost(messaging, tmp_path):
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    # The receiver is slower than the sender, so it has work in flight when stopped.
    receiver = start_receiver(messaging, first, "--work-ms", "0.5", "--prefetch", "200")
    sender = messaging.send("--rate", "3000", "--run-id", "term")
    wait_until(lambda: len(read_ids(first)) >= 500, 30, "the receiver to get 500 messages")

    sender.signal(signal.SIGTERM)
    assert messaging.wait_exit(sender, 30) == 0, sender.output()
    summary = messaging.summary(sender)
    sent = summary["published"]
    assert summary["confirmed"] >= sent > 500

    receiver.signal(signal.SIGTERM)
    assert messaging.wait_exit(receiver, 30) == 0, receiver.output()
    got_first = read_ids(first)
    assert len(set(got_first)) < sent, "the receiver had caught up before it was stopped"
    assert messaging.summary(receiver)["processed"] == len(got_first)

    drain = start_receiver(messaging, second, "--idle-exit", "1")
    assert messaging.wait_exit(drain, 60) == 0, drain.output()
    received = read_ids(first, second)
    assert set(received) == expected_ids("term", sent)
    # No id twice: what the first receiver processed, it acked before it exited.
    assert sorted(i for i, times in Counter(received).items() if times > 1) == []
    assert messaging.depth() == 0


def test_send_blocked_by_a_memory_alarm_pauses_and_resumes(messaging, broker, tmp_path):
    window = 300
    record = tmp_path / "received.txt"
    receiver = start_receiver(messaging, record)
    sender = messaging.send("--rate", "1000", "--window", str(window), "--run-id", "blk")  # until SIGTERM
    wait_until(lambda: len(read_ids(record)) >= 500, 30, "500 messages received")
    try:
        # A watermark far below what the node uses: a memory alarm, publishers blocked at once.
        broker.ctl("set_vm_memory_high_watermark", "absolute", "10MB")
        messaging.wait_logged(sender, "the broker blocked publishing, pausing")
        # receive drains what the queue holds (consumers are not blocked), then nothing more comes.
        wait_until(lambda: messaging.depth() == 0, 30, "receive to drain the queue")
        drained = len(read_ids(record))
        time.sleep(1.0)
        assert len(read_ids(record)) <= drained + window, "messages kept flowing while blocked"
        assert sender.process.poll() is None, sender.output()
    finally:
        broker.ctl("set_vm_memory_high_watermark", "0.4")  # the default: lift the alarm
    messaging.wait_logged(sender, "the broker unblocked publishing, resuming")
    wait_until(lambda: len(read_ids(record)) >= drained + 1000, 30, "messages to flow again")

    sender.signal(signal.SIGTERM)
    assert messaging.wait_exit(sender, 30) == 0, sender.output()
    summary = messaging.summary(sender)
    assert summary["confirmed"] >= summary["published"] and summary["blocked_s"] >= 1.0
    every_id = expected_ids("blk", summary["published"])
    wait_until(lambda: every_id <= set(read_ids(record)), 30, "every published id to be received")  # 0 lost
    assert receiver.stop() == 0
    received = read_ids(record)
    assert set(received) == every_id
    assert len(received) - len(every_id) <= window  # duplicates, if any, within the unconfirmed window


def test_broker_found_through_consul(messaging, broker, fake_consul, tmp_path):
    fake_consul.add("rabbitmq", broker.amqp_port)
    env = messaging.env(RABBITMQ_URL="", RABBITMQ_SERVICE="rabbitmq", CONSUL_HTTP_ADDR=fake_consul.address)
    record = tmp_path / "received.txt"
    receiver = messaging.receive("--record", str(record), env=env)
    sender = messaging.send("--count", "500", "--run-id", "consul", env=env)

    assert messaging.wait_exit(sender, 30) == 0, sender.output()
    wait_until(lambda: len(read_ids(record)) >= 500, 30, "every message to be received")
    assert receiver.stop() == 0, receiver.output()
    assert sorted(read_ids(record)) == sorted(expected_ids("consul", 500))
    asked = [path for method, path, _token in fake_consul.requests_seen if method == "GET"]
    assert asked.count("/v1/health/service/rabbitmq") >= 2
    connected = [r for r in log_records(sender.output()) if r["message"] == "connected"]
    assert connected[0]["broker"] == f"amqp://guest@127.0.0.1:{broker.amqp_port}/%2F"
