"""The messaging benchmark's publishing legs, each in its own process, taking turns against a real broker."""

import subprocess

import pika

from apps.common.rabbitmq import QueueSettings
from benchmarks import messaging
from benchmarks.freezing import Freezer, Leg

MESSAGES = 3000


def test_fire_and_forget_and_apps_send_take_turns_and_report_what_the_broker_holds(broker, queue_name, tmp_path):
    queues = {key: QueueSettings(f"{queue_name}-{key}", "quorum") for key in ("b", "c")}
    settings = {"coalesce_writes": True, "send_window": 500}
    # Stands in for the legs' broker nodes: the session's node serves both and must never be stopped.
    stand_in = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        legs = [
            Leg(
                key,
                messaging.publish_command(key, broker.url, queues[key], MESSAGES, f"run-{key}", settings),
                stand_in.pid,
            )
            for key in ("b", "c")
        ]
        held = Freezer(slice_seconds=0.02).run(legs, tmp_path)
    finally:
        stand_in.kill()
        stand_in.wait()
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    try:
        channel = connection.channel()
        for key, queue in queues.items():
            result = held[key].result
            assert result["messages"] == MESSAGES  # (b): queued, by the broker's count; (c): confirmed
            assert result["end"] > result["start"] and result["cpu_s"] > 0
            assert 0 < held[key].elapsed(result["start"], result["end"]) < result["end"] - result["start"]
            assert channel.queue_declare(queue.name, passive=True).method.message_count == MESSAGES
            channel.queue_delete(queue.name)
    finally:
        connection.close()
