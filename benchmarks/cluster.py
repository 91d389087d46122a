"""What replication costs and buys on this machine: one node vs a three-node cluster, and fail-over.

``python -m benchmarks.cluster`` (``make bench``) starts, in the same run on the
same machine, one throwaway RabbitMQ node and a three-node cluster
(devtools.rabbitmq_cluster: Debian's 3.10 on loopback, every node limited to
one Erlang scheduler, the single node too, so the two differ only by
replication). It measures:

  (1) single node: apps.send's Publisher (persistent messages, publisher
      confirms, default window) to a quorum queue with one replica, timed
      until the last confirm;
  (2) cluster: the same to a quorum queue with three replicas (one per node):
      a message is confirmed once a majority (2 of 3) has written it;
  (3) fail-over: the Publisher finds the three nodes as the apps do (a Consul
      answer listing all three; the killed one stays listed, as it would until
      its TTL check expires) and publishes ``--messages`` at a steady rate; the
      node it is connected to is SIGKILLed midway. ``failover_s`` is the time
      from the SIGKILL to its first confirmed publish through another node.
      Then the queue is drained: ``lost`` is confirmed ids never received,
      ``duplicates`` the deliveries beyond the first of an id.

(1) and (2) run ``--rounds`` times, interleaved, and report medians (the
machine is shared). Writes build/bench/cluster.json, prints a table, exits 1
if a target is missed: lost == 0 and failover_s < 10. The cluster/single ratio
is reported whatever it is; it has no target.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import pika

from apps.common.discovery import Endpoint, NoHealthyInstance
from apps.common.pika_tuning import coalesce_writes
from apps.common.rabbitmq import BrokerLocator, BrokerSettings, QueueSettings
from apps.send.messages import MessageFactory, MessageSource, message_id
from apps.send.publisher import Publisher
from benchmarks.messaging import send_with_confirms
from devtools.procs import REPO_ROOT
from devtools.rabbitmq import RabbitMQNode
from devtools.rabbitmq_cluster import RabbitMQCluster

TARGETS = {"lost": 0, "failover_s": 10.0}
SERVICE = "rabbitmq"


class StaticDiscovery:
    """A Consul answer that lists every node as healthy, with ConsulDiscovery's ``pick``/``forget`` behaviour."""

    def __init__(self, ports: list[int], host: str = "127.0.0.1"):
        self.endpoints = [Endpoint(host, port, f"{SERVICE}:{port}") for port in ports]

    def healthy(self, service: str) -> list[Endpoint]:
        return list(self.endpoints)

    def pick(self, service: str, avoid: Endpoint | None = None) -> Endpoint:
        if not self.endpoints:
            raise NoHealthyInstance(service)
        others = [endpoint for endpoint in self.endpoints if endpoint != avoid]
        return random.choice(others or self.endpoints)

    def forget(self, service: str) -> None:
        pass


class FailoverPublisher(Publisher):
    """apps.send's Publisher that notes its first confirm through another node after ``killed_port`` died."""

    killed_at: float | None = None
    killed_port: int | None = None
    failover_at: float | None = None

    def _on_confirm(self, frame) -> None:
        if (
            self.killed_at is not None
            and self.failover_at is None
            and self.address is not None
            and self.address.port != self.killed_port
        ):
            self.failover_at = time.monotonic()
        super()._on_confirm(frame)


def failover(cluster: RabbitMQCluster, count: int, rate: float) -> dict:
    """Publish ``count`` at ``rate``, SIGKILL the publisher's node midway; fail-over time, lost, duplicates."""
    queue = QueueSettings("bench-failover", "quorum")
    settings = BrokerSettings(service=SERVICE, retry_seconds=60, backoff_initial=0.2, backoff_max=1.0)
    locator = BrokerLocator(settings, StaticDiscovery([node.amqp_port for node in cluster.nodes]))
    publisher = FailoverPublisher(
        settings, queue, MessageSource(MessageFactory("failover"), count=count, rate=rate), locator=locator
    )
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(code=publisher.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while publisher.confirmed < count // 3:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the publisher did not get going ({publisher.confirmed} confirmed)")
        time.sleep(0.01)
    time.sleep(1.0)  # RabbitMQ 3.10 writes a new quorum queue's membership lazily: not in its first second
    victim = cluster.node_at(publisher.address.port)
    publisher.killed_port = victim.amqp_port
    publisher.killed_at = time.monotonic()
    victim.kill()
    print(f"  SIGKILLed {victim.nodename} (the publisher's node) after {publisher.confirmed} confirms")
    thread.join(120)
    if outcome.get("code") != 0 or publisher.failover_at is None:
        raise RuntimeError(f"the publisher exited {outcome.get('code')} with {publisher.confirmed}/{count} confirmed")
    survivor = next(node for node in cluster.nodes if node.is_running())
    received = drain(survivor.url, queue.name)
    wanted = {message_id("failover", n) for n in range(count)}
    result = {
        "failover_s": round(publisher.failover_at - publisher.killed_at, 3),
        "confirmed": publisher.confirmed,
        "republished": publisher.republished,
        "lost": len(wanted - set(received)),
        "duplicates": len(received) - len(set(received)),
        "received": len(received),
    }
    victim.start().wait_ready()  # back for the cluster's clean shutdown
    return result


def drain(url: str, queue: str, idle: float = 3.0) -> list[str]:
    """Every message id in ``queue`` (consumed with auto-ack), until it has been idle ``idle`` seconds."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1000)
        ids = []
        for method, properties, _body in channel.consume(queue, auto_ack=True, inactivity_timeout=idle):
            if method is None:
                break
            ids.append(properties.message_id)
        channel.cancel()
        return ids
    finally:
        connection.close()


def rabbitmq_version(node: RabbitMQNode) -> str:
    try:
        return node.ctl("version").strip()
    except Exception:
        return "unknown"


def run(messages: int, rounds: int, failover_rate: float, work_dir: Path) -> dict:
    coalesce_writes()  # what apps.send runs with
    single = RabbitMQNode(data_dir=work_dir / "single", schedulers=1)
    cluster = RabbitMQCluster(base_dir=work_dir / "cluster", schedulers=1)
    try:
        started = time.monotonic()
        single.start()
        cluster.start()
        single.wait_ready()
        print(f"one node and a cluster of three up in {time.monotonic() - started:.0f} s; {messages} messages per run")
        rates: dict[str, list[float]] = {"single": [], "cluster": []}
        for round_no in range(1, rounds + 1):
            queue = QueueSettings(f"bench-replicas-{round_no}", "quorum")
            one = send_with_confirms(single.url, queue, messages, f"single{round_no}")
            three = send_with_confirms(cluster.nodes[0].url, queue, messages, f"cluster{round_no}")
            replicas = len(cluster.queue_members(queue.name)["members"])
            print(f"  round {round_no}: single node {one:8.0f}  cluster ({replicas} replicas) {three:8.0f} msg/s")
            rates["single"].append(one)
            rates["cluster"].append(three)
        result = failover(cluster, messages, failover_rate)
        version = rabbitmq_version(single)
    finally:
        single.close()
        cluster.close()
    single_rate = statistics.median(rates["single"])
    cluster_rate = statistics.median(rates["cluster"])
    report = {
        "single_node_msgs_per_s": round(single_rate, 1),
        "cluster_msgs_per_s": round(cluster_rate, 1),
        "cluster_vs_single": round(cluster_rate / single_rate, 3),
        "messages": messages,
        "lost": result["lost"],
        "duplicates": result["duplicates"],
        "failover_s": result["failover_s"],
        "failover": result,
        "failover_rate_msgs_per_s": failover_rate,
        "rounds": rounds,
        "per_round": {key: [round(v, 1) for v in values] for key, values in rates.items()},
        "replicas": 3,
        "queue_type": "quorum",
        "schedulers_per_node": 1,
        "cpus": os.cpu_count(),
        "rabbitmq": version,
    }
    report["targets_met"] = {"lost": report["lost"] == 0, "failover_s": report["failover_s"] < TARGETS["failover_s"]}
    return report


def print_table(report: dict) -> None:
    print()
    print(f"{'measurement':<52} {'value':>10}")
    print(f"{'single node, quorum queue (1 replica), msg/s':<52} {report['single_node_msgs_per_s']:>10.0f}")
    print(f"{'cluster of 3, quorum queue (3 replicas), msg/s':<52} {report['cluster_msgs_per_s']:>10.0f}")
    print(f"{'cluster / single':<52} {report['cluster_vs_single']:>10}")
    print(f"{'duplicates after the SIGKILL (allowed)':<52} {report['duplicates']:>10}")
    met = report["targets_met"]
    print(f"{'lost (confirmed, never received)':<52} {report['lost']:>10}  == 0  {'yes' if met['lost'] else 'NO'}")
    print(
        f"{'failover_s (SIGKILL -> first confirm elsewhere)':<52} {report['failover_s']:>10}  < 10  "
        f"{'yes' if met['failover_s'] else 'NO'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per run (20000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of (1) and (2); medians are reported (3)")
    parser.add_argument("--failover-rate", type=float, default=2000.0, help="msg/s during the fail-over run (2000)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench" / "cluster.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    logging.getLogger("seaport-send").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="seaport-bench-cluster-") as work_dir:
        report = run(args.messages, args.rounds, args.failover_rate, Path(work_dir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwritten to {args.out.relative_to(REPO_ROOT) if args.out.is_relative_to(REPO_ROOT) else args.out}")
    return 0 if all(report["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
