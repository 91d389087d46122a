"""What this stack's Monitoring watches: every service with its floor, the queue, the broker, Consul.

Kept out of __main__.py so the composition reads as one; the floors are plain numbers from the settings
(alarm thresholds can't wait for outputs).
"""

from typing import Any

import settings
from seaport import MessagingWatch, ServiceWatch
from seaport.cluster import DEFAULTS as CLUSTER_DEFAULTS
from seaport.messaging import dedicated_instance_counts, dedicated_instances


def services(
    config: settings.Settings, backends: dict[str, Any], messaging: Any, mesh: Any, receive_floor: int
) -> list[ServiceWatch]:
    """Every ECS service but the portal (a web service, watched as one) and its fewest running tasks."""
    m = config["messaging"]
    mode = m.get("broker_mode", "container")
    watched: list[ServiceWatch] = [
        {
            "name": name,
            "service_name": service.service_name,
            "min_running_tasks": config["backends"].get("desired_tasks", 1),
        }
        for name, service in backends.items()
    ]
    watched += [
        {"name": "send", "service_name": messaging.send_service_name, "min_running_tasks": m.get("send_tasks", 1)},
        {"name": "receive", "service_name": messaging.receive_service_name, "min_running_tasks": receive_floor},
        {"name": "consul-agent", "service_name": mesh.agent_service_name, "min_running_tasks": instances(config)},
    ]
    if mode != "amazonmq":
        nodes = m.get("broker_nodes", 3) if mode == "cluster" else 1
        watched.append({"name": "broker", "service_name": messaging.broker_service_name, "min_running_tasks": nodes})
    return watched


def instances(config: settings.Settings) -> int:
    """The fewest container instances the stack runs: the group's minimum plus the broker's own instances.
    The Consul agent is a DAEMON, one per instance: fewer agents than this means an instance whose tasks can
    neither register nor find anything."""
    minimum = config["cluster"].get("min_instances", CLUSTER_DEFAULTS["min_instances"])
    counts = dedicated_instance_counts(config["messaging"])
    return minimum + sum(counts.get(name, 1) for name in dedicated_instances(config["messaging"]))


def queue(config: settings.Settings, messaging: Any) -> MessagingWatch:
    """The queue and whichever broker runs it."""
    m = config["messaging"]
    broker: dict[str, Any] = (
        {"amazon_mq_broker_name": messaging.amazon_mq_broker_name}
        if m.get("broker_mode") == "amazonmq"
        else {"broker_service_name": messaging.broker_service_name}
    )
    return {
        "queue_name": m.get("queue_name", "messages"),
        **broker,  # type: ignore[typeddict-item]
        "receive_service_name": messaging.receive_service_name,
        "receive_autoscaling": m.get("receive_autoscaling", {}),
    }
