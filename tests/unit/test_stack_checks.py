"""What the deploy-day and operations issues check, on the real stacks' plans (dev and prod), by value.

The component tests prove each behaviour on a small composition; these prove the stacks users deploy have it:
services wait for what ECS needs to exist first, the broker has its memory and disk limits, and every alarm,
the dashboard, the portal's rollback and receive's backlog scaling are in both stacks.
"""

import json

import pytest

from seaport import rabbitmq_config

SERVICE = "aws:ecs/service:Service"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


@pytest.fixture(params=["dev", "prod"])
def stack(request, dev_plan, prod_plan):
    return {"dev": dev_plan, "prod": prod_plan}[request.param]


def test_every_service_with_a_capacity_provider_waits_for_its_association(stack):
    association = stack.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    with_strategy = [s for s in stack.of_type(SERVICE) if s["inputs"].get("capacityProviderStrategies")]
    assert with_strategy, "no service names the capacity provider"
    assert [s["name"] for s in with_strategy if not stack.depends_on(s, association)] == []


def test_the_portal_waits_for_every_listener_of_its_load_balancer(stack):
    portal = stack.named("portal", SERVICE)
    listeners = stack.of_type("aws:lb/listener:Listener")
    assert listeners
    assert [listener["name"] for listener in listeners if not stack.depends_on(portal, listener)] == []


def test_the_broker_has_an_absolute_memory_watermark_and_a_disk_limit(stack):
    conf = {}
    for service in stack.of_type(SERVICE):
        task = stack.referenced(service["inputs"].get("taskDefinition"))
        for container in json.loads(task["inputs"]["containerDefinitions"]) if task else []:
            for variable in container.get("environment", []):
                if variable["name"] == rabbitmq_config.CONF_VARIABLE:
                    conf = dict(line.split(" = ", 1) for line in variable["value"].splitlines())
    assert conf, "no broker configuration in the plan"
    assert int(conf["vm_memory_high_watermark.absolute"].removesuffix("MiB")) > 0
    assert conf["disk_free_limit.absolute"]


def test_alarms_dashboard_rollback_and_backlog_scaling_are_in_the_stack(stack):
    topic = stack.one("aws:sns/topic:Topic")
    names = {alarm["name"].removeprefix("monitoring-"): alarm for alarm in stack.of_type(ALARM)}
    wanted = {"portal-5xx", "portal-unhealthy-targets", "dead-letters", "backlog", "no-consumer", "consul-servers"}
    assert wanted - set(names) == set()
    labels = {name.removesuffix("-tasks") for name in names if name.endswith("-tasks")}
    services = [service["name"] for service in stack.of_type(SERVICE)]
    uncovered = [s for s in services if not any(s == label or s.endswith(f"-{label}") for label in labels)]
    assert uncovered == [], "a service without its running-tasks alarm"
    wanted |= {f"{label}-tasks" for label in labels}
    assert [n for n in wanted if topic["outputs"]["arn"] not in names[n]["inputs"]["alarmActions"]] == []
    assert stack.one("aws:cloudwatch/dashboard:Dashboard")
    portal = stack.named("portal", SERVICE)["inputs"]
    assert portal["alarms"]["rollback"] is True
    assert names["portal-5xx"]["inputs"]["name"] in portal["alarms"]["alarmNames"]
    receive = stack.named("messaging-receive", SERVICE)
    targets = [
        t for t in stack.of_type("aws:appautoscaling/target:Target") if receive["name"] in t["inputs"]["resourceId"]
    ]
    assert len(targets) == 1
    policies = [
        p
        for p in stack.of_type("aws:appautoscaling/policy:Policy")
        if p["inputs"]["resourceId"] == targets[0]["inputs"]["resourceId"]
    ]
    assert [p["inputs"]["policyType"] for p in policies] == ["TargetTrackingScaling"]


def test_the_consul_agents_alarm_expects_one_agent_per_instance(stack):
    """The agent is a DAEMON: one per instance of the main group at its minimum and of the broker's own."""
    groups = stack.of_type("aws:autoscaling/group:Group")
    container_instances = sum(g["inputs"]["minSize"] for g in groups if not g["name"].startswith("consul-servers"))
    alarm = stack.named("monitoring-consul-agent-tasks", ALARM)
    assert alarm["inputs"]["threshold"] == container_instances > 1
