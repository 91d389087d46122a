"""Monitored systems to check by value: one composed here from the components, and the real stacks.

``system_plan(...)`` composes the system the way __main__.py does (a cluster, the portal behind its load
balancer with its deployment alarms, a backend, the broker as an ECS service or Amazon MQ, send, receive scaled
on its backlog, the Consul agents and servers) and a ``Monitoring`` given the components' outputs.

``stack_plan(stack)`` is the real stack. Until __main__.py creates the Monitoring itself, it runs __main__.py and
then creates, after it, what the composition is to add: receive's backlog scaling and a ``Monitoring`` given the
components' outputs. Names the components do not export yet (the broker's ECS service or Amazon MQ broker, the
Consul agents' service) are read from a first run of the same program: the mocks name resources
deterministically, so the second run creates the same ones (a user may pass plain ids the same way).
"""

from __future__ import annotations

import functools
import runpy
from pathlib import Path
from typing import Any

import pulumi_aws as aws
import pytest

from seaport import ContainerService, EcsCluster, ScaledWebService, ServiceAutoscaling
from seaport.monitoring import Monitoring, deployment_alarm_names
from seaport.tools.mocks import ACCOUNT, ecr_registry
from seaport.tools.testing import Plan, run, run_program, stack_config
from tests.unit.references import NETWORK

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "__main__.py"
ECS_SERVICE = "aws:ecs/service:Service"
QUEUE = "messages"
RECEIVE_SCALING = {"scaling_mode": "backlog", "min_tasks": 1, "max_tasks": 6, "target_backlog_per_task": 100}
PORTAL_SCALING = {"scaling_mode": "step", "min_tasks": 2, "max_tasks": 4}


def image(app: str) -> str:
    return f"{ecr_registry(ACCOUNT, 'us-east-1')}/{app}-1234567@sha256:" + "b" * 64


# -- a system composed from the components --------------------------------------------------------


@functools.cache
def system_plan(broker: str = "container", container_insights: bool = True, email: str = "ops@example.com") -> Plan:
    return run(lambda: compose(broker, container_insights, email))


def compose(broker: str, container_insights: bool, email: str) -> None:
    cluster = EcsCluster(
        "main",
        {"network": NETWORK, "container_insights": container_insights, "dedicated_instances": {"broker": ""}},
    )
    ref = cluster.reference
    portal = ScaledWebService(
        "portal",
        {
            "cluster": ref,
            "container": {"image": image("portal"), "port": 8080},
            "autoscaling": PORTAL_SCALING,
            "service": {"deployment_alarms": deployment_alarm_names("monitoring", "portal")},
        },
    )

    def service(name: str, **options: Any) -> ContainerService:
        return ContainerService(name, {"cluster": ref, "container": {"image": image(name)}, **options})

    weather, send, receive = service("weather"), service("send"), service("receive", desired_tasks=1)
    agents = service("consul-agent", scheduling="DAEMON", network_mode="host")
    ServiceAutoscaling("receive", {**RECEIVE_SCALING, "cluster": ref, "service_name": receive.service_name,
                                   "queue_name": QUEUE})  # fmt: skip
    servers = aws.autoscaling.Group(
        "consul-servers", min_size=3, max_size=3, enabled_metrics=["GroupInServiceInstances"]
    )
    watched = [("weather", weather), ("send", send), ("receive", receive), ("consul-agent", agents)]
    if broker == "amazonmq":
        mq = aws.mq.Broker(
            "broker",
            broker_name="seaport-test-broker",
            engine_type="RabbitMQ",
            engine_version="4.2",
            host_instance_type="mq.m7g.large",
            users=[],
        )
        where: dict[str, Any] = {"amazon_mq_broker_name": mq.broker_name}
    else:
        node = service("broker", dedicated_instance="broker", min_healthy_percent=0, max_percent=100)
        watched.append(("broker", node))
        where = {"broker_service_name": node.service_name}
    Monitoring(
        "monitoring",
        {
            "cluster": ref,
            "cluster_autoscaling_group_name": cluster.autoscaling_group_name,
            "container_insights": container_insights,
            "web_services": [
                {
                    "name": "portal",
                    "load_balancer_arn_suffix": portal.load_balancer_arn_suffix,
                    "target_group_arn": portal.target_group_arn,
                    "service_name": portal.service_name,
                    "autoscaling": PORTAL_SCALING,
                }
            ],
            "services": [{"name": name, "service_name": s.service_name} for name, s in watched],
            "messaging": {
                "queue_name": QUEUE,
                **where,
                "receive_service_name": receive.service_name,
                "receive_autoscaling": RECEIVE_SCALING,
            },
            "consul": {
                "server_autoscaling_group_name": servers.name,
                "servers": 3,
                "agent_service_name": agents.service_name,
            },
            "alarm_email": email,
        },
    )


# -- the real stacks ---------------------------------------------------------------------------------


@functools.cache
def stack_plan(stack: str, broker_mode: str | None = None) -> Plan:
    settings = {**stack_config(REPO, stack), **({"seaport:brokerMode": broker_mode} if broker_mode else {})}
    plan = run_program(MAIN, stack=stack, config=settings)
    if plan.of_type("seaport:index:Monitoring"):
        return plan  # wired by __main__.py itself
    names = hidden_names(plan)
    return run(lambda: _wire_after_main(names), stack=stack, config=settings)


def hidden_names(plan: Plan) -> dict[str, Any]:
    """The broker's and the Consul agents' names, which the components do not export."""
    services = plan.of_type(ECS_SERVICE)
    broker = [s["outputs"]["name"] for s in services if s["name"].endswith("-broker")]
    agents = [s["outputs"]["name"] for s in services if s["inputs"].get("schedulingStrategy") == "DAEMON"]
    amazon_mq = [b["outputs"].get("brokerName") or b["outputs"]["name"] for b in plan.of_type("aws:mq/broker:Broker")]
    return {
        "broker_service": broker[0] if broker else None,
        "amazon_mq_broker": amazon_mq[0] if amazon_mq else None,
        "agent_service": agents[0],
        # each replica service's desired count, by logical name: the floor its running-tasks alarm holds
        "desired": {s["name"]: s["inputs"]["desiredCount"] for s in services if "desiredCount" in s["inputs"]},
    }


def _wire_after_main(names: dict[str, Any]) -> None:
    g = runpy.run_path(str(MAIN), run_name="__main__")
    config, cluster, messaging = g["config"], g["cluster"], g["messaging"]
    queue = config["messaging"].get("queue_name", QUEUE)
    scaling = {**RECEIVE_SCALING, "cluster": cluster.reference, "service_name": messaging.receive_service_name}
    ServiceAutoscaling("receive", {**scaling, "queue_name": queue})
    Monitoring("monitoring", monitoring_args(g, names))


def monitoring_args(g: dict[str, Any], names: dict[str, Any]) -> dict[str, Any]:
    """Monitoring's arguments from the composition's components (the globals of __main__.py)."""
    config, cluster, messaging, mesh, portal = g["config"], g["cluster"], g["messaging"], g["mesh"], g["portal"]
    broker = (
        {"amazon_mq_broker_name": names["amazon_mq_broker"]}
        if names["amazon_mq_broker"]
        else {"broker_service_name": names["broker_service"]}
    )
    desired = names["desired"]
    services = [
        {"name": name, "service_name": s.service_name, "min_running_tasks": desired[name]}
        for name, s in g["backends"].items()
    ]
    services += [
        {"name": "send", "service_name": messaging.send_service_name, "min_running_tasks": desired["messaging-send"]},
        # autoscaled on its backlog: never below its fewest
        {"name": "receive", "service_name": messaging.receive_service_name, "min_running_tasks": 1},
        # a daemon: one agent per instance, at least one
        {"name": "consul-agent", "service_name": names["agent_service"], "min_running_tasks": 1},
    ]
    if names["broker_service"]:
        nodes = desired["messaging-broker"]
        services.append({"name": "broker", "service_name": names["broker_service"], "min_running_tasks": nodes})
    return {
        "cluster": cluster.reference,
        "cluster_autoscaling_group_name": cluster.autoscaling_group_name,
        "container_insights": config["cluster"].get("container_insights", True),
        "web_services": [
            {
                "name": "portal",
                "load_balancer_arn_suffix": portal.load_balancer_arn_suffix,
                "target_group_arn": portal.target_group_arn,
                "service_name": portal.service_name,
                "autoscaling": config["portal"].get("autoscaling", {}),
            }
        ],
        "services": services,
        "messaging": {
            "queue_name": config["messaging"].get("queue_name", QUEUE),
            **broker,
            "receive_service_name": messaging.receive_service_name,
            "receive_autoscaling": RECEIVE_SCALING,
        },
        "consul": {
            "server_autoscaling_group_name": mesh.server_autoscaling_group_name,
            "servers": config["consul"].get("servers", 3),
            "agent_service_name": names["agent_service"],
        },
    }


# -- the systems the monitoring and dashboard tests run over ----------------------------------------------------

SYSTEMS = {
    "container-broker": lambda: system_plan("container", True),
    "amazonmq-no-insights": lambda: system_plan("amazonmq", False),
    "dev": lambda: stack_plan("dev"),
    "prod": lambda: stack_plan("prod"),
    "dev-amazonmq": lambda: stack_plan("dev", "amazonmq"),
}


@pytest.fixture(params=sorted(SYSTEMS))
def any_system(request):
    """Each monitored system in turn: composed ones and the real stacks."""
    return SYSTEMS[request.param]()


@pytest.fixture(scope="module")
def system():
    """The composed system with a container broker and Container Insights."""
    return system_plan("container", True)
