"""apps.send and apps.receive on a real three-node RabbitMQ cluster, through node crashes and a lost majority.

The cluster (devtools.rabbitmq_cluster, one per session) is three nodes of
Debian's RabbitMQ 3.10 on loopback, each with its own node name, ports and data,
running seaport's generated clustered-node settings (``pause_minority`` among
them) but formed by the **classic_config** peer-discovery backend (the node list
in rabbitmq.conf), not by Consul: on one machine, 3.10's Consul backend
registers every node under the same host name (service id ``rabbitmq:<host>``,
so the three registrations would overwrite each other) and derives each peer's
Erlang node name from that host name, so it cannot form a cluster of several
nodes on one host. The Consul backend itself is booted with the exact
generated configuration in test_cluster_config.py.

The apps find the nodes as on ECS: through a (fake) Consul agent where each node
is an instance of the service ``rabbitmq``. A killed node stays registered and
passing, as it would in Consul until its TTL check expires (30 s), so the apps
have to cope with an address that refuses connections. The work queue is a
quorum queue with a replica on each node.

Each test prints and asserts what was sent, confirmed, received, duplicated and
lost (confirmed but never received: must be 0; duplicates are allowed,
delivery is at-least-once).
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.apps.helpers import Counts, log_records, wait_until

pytestmark = pytest.mark.rabbitmq

COUNT = 20_000
RATE = "4000"  # messages/s: the send lasts ~5 s, long enough for a crash to land in the middle of it


def start_receiver(messaging, record, *args):
    receiver = messaging.receive("--record", str(record), *args)
    messaging.wait_logged(receiver, "consuming")
    return receiver


def wait_queue_replicated(messaging, declared_at: float) -> None:
    """RabbitMQ 3.10 writes a new quorum queue's membership to disk lazily (within a second or so)."""
    time.sleep(max(0.0, 2.0 - (time.monotonic() - declared_at)))


def finish(messaging, sender, receiver, record, run_id: str, count: int, label: str) -> Counts:
    """Wait for the send to end (every message confirmed) and the receiver to have every id; the counts."""
    assert messaging.wait_exit(sender, 90) == 0, sender.output()[-3000:]
    messaging.wait_received(record, run_id, count, 60)
    receiver.stop()
    assert receiver.process.returncode == 0, receiver.output()[-3000:]
    counts = Counts.of(messaging.summary(sender), run_id, count, record)
    counts.show(label)
    assert counts.sent == count
    assert counts.confirmed == count
    assert counts.received == count
    assert counts.lost == 0
    return counts


def test_sigkill_one_of_three_nodes_while_sending(cluster_messaging, cluster, tmp_path):
    """The node leading the queue dies mid-send: a new leader takes over, no confirmed message is lost."""
    messaging = cluster_messaging
    record = tmp_path / "received.txt"
    receiver = start_receiver(messaging, record)
    declared_at = time.monotonic()
    sender = messaging.send("--count", str(COUNT), "--rate", RATE, "--run-id", "kill1")
    wait_until(lambda: len(record.read_text().split()) >= 3000 if record.exists() else False, 30, "3000 received")
    wait_queue_replicated(messaging, declared_at)
    leader = cluster.queue_members(messaging.queue)["leader"]
    victim = next(node for node in cluster.nodes if node.nodename == leader)
    assert sender.process.poll() is None, "the send finished before the crash"
    victim.kill()
    victim.start()  # boots again on its data while the apps go on (the next test waits for it)

    counts = finish(messaging, sender, receiver, record, "kill1", COUNT, f"SIGKILL of {victim.nodename} (queue leader)")
    assert counts.lost == 0


def test_sigkill_the_node_receive_is_connected_to(cluster_messaging, cluster, tmp_path):
    """receive loses its node: it reconnects to another, consumes again, and every message arrives."""
    messaging = cluster_messaging
    record = tmp_path / "received.txt"
    receiver = start_receiver(messaging, record)
    declared_at = time.monotonic()
    victim = cluster.node_at(messaging.connections(receiver)[0])
    sender = messaging.send("--count", str(COUNT), "--rate", RATE, "--run-id", "kill2")
    wait_until(lambda: len(record.read_text().split()) >= 3000 if record.exists() else False, 30, "3000 received")
    wait_queue_replicated(messaging, declared_at)
    assert sender.process.poll() is None, "the send finished before the crash"
    victim.kill()
    killed_at = time.monotonic()
    victim.start()

    reconnected = wait_until(lambda: messaging.connections(receiver)[1:], 30, "receive to reconnect")
    assert reconnected[0] != victim.amqp_port
    print(f"\nreceive reconnected to another node {time.monotonic() - killed_at:.1f} s after the SIGKILL")
    finish(messaging, sender, receiver, record, "kill2", COUNT, f"SIGKILL of {victim.nodename} (receive's node)")
    consuming = [r for r in log_records(receiver.output()) if r.get("message") == "consuming"]
    assert len(consuming) >= 2, "receive did not consume again after the reconnection"


def test_killed_node_restarts_and_rejoins(cluster_messaging, cluster, tmp_path):
    """A node killed while messages flow comes back on its data, rejoins, and its queue replica catches up."""
    messaging = cluster_messaging
    messaging.declare()
    declared_at = time.monotonic()
    wait_queue_replicated(messaging, declared_at)
    leader = cluster.queue_members(messaging.queue)["leader"]
    victim = next(node for node in cluster.nodes if node.nodename != leader)
    others = [node for node in cluster.nodes if node is not victim]
    victim.kill()
    count = 5000
    sender = messaging.send("--count", str(count), "--run-id", "rejoin")
    assert messaging.wait_exit(sender, 60) == 0, sender.output()[-3000:]  # published while the node is down

    victim.start().wait_ready()
    cluster.wait_formed()
    assert cluster.running_nodes(others[0]) == {node.nodename for node in cluster.nodes}
    members = wait_until(
        lambda: (m := cluster.queue_members(messaging.queue)) and victim.nodename in m["online"] and m,
        30,
        "the restarted node's replica to be online",
    )
    assert set(members["members"]) == {node.nodename for node in cluster.nodes}

    # Consumed through the restarted node only: the other two are critical in Consul for this receiver.
    for node in others:
        messaging.consul.set_status(f"rabbitmq:{node.nodename}", "critical")
    record = tmp_path / "received.txt"
    receiver = start_receiver(messaging, record)
    assert messaging.connections(receiver) == [victim.amqp_port]
    for node in others:
        messaging.consul.set_status(f"rabbitmq:{node.nodename}", "passing")
    messaging.wait_received(record, "rejoin", count, 30)
    receiver.stop()
    counts = Counts.of(messaging.summary(sender), "rejoin", count, record)
    counts.show(f"{victim.nodename} killed, {count} sent while down, restarted")
    assert (counts.sent, counts.confirmed, counts.received, counts.lost) == (count, count, count, 0)


def test_majority_down_pauses_publishing_until_it_is_back(cluster_messaging, cluster, tmp_path):
    """Two of three nodes stop: publishing stops (and says so), nothing is lost; one is back: it resumes."""
    messaging = cluster_messaging
    record = tmp_path / "received.txt"
    receiver = start_receiver(messaging, record)
    declared_at = time.monotonic()
    sender = messaging.send("--count", str(COUNT), "--rate", "2000", "--run-id", "majority")
    wait_until(lambda: len(record.read_text().split()) >= 2000 if record.exists() else False, 30, "2000 received")
    wait_queue_replicated(messaging, declared_at)
    survivor = cluster.node_at(messaging.connections(sender)[-1])  # the node send publishes through stays
    stopped = [node for node in cluster.nodes if node is not survivor]
    threads = [threading.Thread(target=node.stop) for node in stopped]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    down_at = time.monotonic()

    paused = messaging.wait_logged(sender, "publishing paused", timeout=30)
    print(f"\nsend paused {time.monotonic() - down_at:.1f} s after the majority stopped: {paused}")
    time.sleep(2)
    assert sender.process.poll() is None, "send gave up while the majority was down"

    back = stopped[0]
    back.start().wait_ready()
    resumed = messaging.wait_logged(sender, "publishing resumed", timeout=60)
    print(f"send resumed {time.monotonic() - down_at:.1f} s after the majority stopped: {resumed}")
    finish(messaging, sender, receiver, record, "majority", COUNT, "two of three nodes stopped, one brought back")
    stopped[1].start()  # boots in the background; the next cluster test waits for it
