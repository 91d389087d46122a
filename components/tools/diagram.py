"""The deployed system as its users think of it, drawn from a plan (never by hand).

What the original report's architecture figure showed: the Internet reaching
the load balancer, the load balancer reaching the web tasks, services
finding each other through Consul (``portal`` -> ``weather``, ``stocks``;
``send`` -> broker -> ``receive``), a Consul agent on every instance and the
Consul servers. Each arrow carries its port and the security group rule that
admits it. Everything is read from the plan by value:

- load balancers, listeners and world-open ingress rules give Internet -> ALB;
- an ECS service's target group gives ALB -> service;
- ``seaport:discovers`` and ``seaport:consul-service`` tags on ECS services
  (set by ContainerService) give the arrows through Consul, oriented by the
  ``seaport:messaging`` tag (a consumer receives from the broker);
- a ``RABBITMQ_URL`` equal to an Amazon MQ endpoint gives service -> broker;
- ingress rules between security groups give the ports on each arrow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..consul_config import JOIN_TAG_KEY
from ..rules import EPHEMERAL_PORTS
from .testing import Plan

SERVICE = "aws:ecs/service:Service"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
WORLD = ("0.0.0.0/0", "::/0")


@dataclass
class System:
    """Nodes (id -> label), the group of nodes on the ECS instances, and labelled arrows."""

    nodes: dict[str, str] = field(default_factory=dict)
    on_instances: list[str] = field(default_factory=list)
    arrows: list[tuple[str, str, str]] = field(default_factory=list)

    def arrow(self, source: str, target: str, label: str) -> None:
        if (source, target, label) not in self.arrows:
            self.arrows.append((source, target, label))


def system(plan: Plan) -> System:
    """The system view of a plan."""
    view = _View(plan)
    result = System()
    result.nodes["internet"] = "Internet"
    for balancer in view.public_load_balancers():
        result.nodes[_id(balancer)] = f"{balancer['name']}<br/>Application Load Balancer"
    for service in plan.of_type(SERVICE):
        result.nodes[_id(service)] = view.service_label(service)
        result.on_instances.append(_id(service))
    for group in view.consul_servers():
        count = group["inputs"].get("desiredCapacity") or group["inputs"].get("minSize")
        result.nodes[_id(group)] = f"Consul servers ({count})<br/>{group['name']}"
    for broker in plan.of_type("aws:mq/broker:Broker"):
        result.nodes[_id(broker)] = f"{broker['name']}<br/>Amazon MQ ({broker['inputs'].get('deploymentMode')})"
    view.internet_arrows(result)
    view.load_balancer_arrows(result)
    view.consul_arrows(result)
    view.amazon_mq_arrows(result)
    view.agent_arrows(result)
    return result


class _View:
    def __init__(self, plan: Plan):
        self.plan = plan
        self.groups = {r["outputs"].get("id"): r["name"] for r in plan.of_type("aws:ec2/securityGroup:SecurityGroup")}
        self.rules = [r["inputs"] for r in plan.of_type(INGRESS)]
        self.services = plan.of_type(SERVICE)

    # -- nodes ---------------------------------------------------------------------------------

    def public_load_balancers(self) -> list[dict[str, Any]]:
        return [r for r in self.plan.of_type("aws:lb/loadBalancer:LoadBalancer") if not r["inputs"].get("internal")]

    def consul_servers(self) -> list[dict[str, Any]]:
        return [
            r
            for r in self.plan.of_type("aws:autoscaling/group:Group")
            if any(t.get("key") == JOIN_TAG_KEY for t in r["inputs"].get("tags") or [])
        ]

    def service_label(self, service: dict[str, Any]) -> str:
        inputs = service["inputs"]
        if inputs.get("schedulingStrategy") == "DAEMON":
            count = "one task on every instance"
        else:
            count = f"{inputs.get('desiredCount')} task(s)"
        mode = self.task_definition(service).get("networkMode", "bridge")
        return f"{self.name(service)}<br/>ECS service, {mode} network, {count}"

    def name(self, service: dict[str, Any]) -> str:
        return service["name"]

    def task_definition(self, service: dict[str, Any]) -> dict[str, Any]:
        for r in self.plan.of_type(TASK_DEFINITION):
            if r["outputs"].get("arn") == service["inputs"].get("taskDefinition"):
                return r["inputs"]
        return {}

    def containers(self, service: dict[str, Any]) -> list[dict[str, Any]]:
        text = self.task_definition(service).get("containerDefinitions")
        try:
            return json.loads(text) if isinstance(text, str) else []
        except json.JSONDecodeError:  # a secret-marked definition ("[secret]") shows no containers
            return []

    def tag(self, service: dict[str, Any], key: str) -> str:
        return (service["inputs"].get("tags") or {}).get(key, "")

    def group_rule(self, target_group: str | None, source_group: str | None, containing: int | None = None) -> str:
        """The ports a security group admits from another (those whose range holds ``containing``, when given),
        as text: ``tcp 8300, udp 8301 (sg a from sg b)``."""
        ports = sorted(
            {
                _ports(r)
                for r in self.rules
                if r.get("securityGroupId") == target_group
                and r.get("referencedSecurityGroupId") == source_group
                and (containing is None or int(r.get("fromPort", 0)) <= containing <= int(r.get("toPort", 0)))
            }
        )
        if not ports:
            return ""
        return f"{', '.join(ports)} (sg {self.groups.get(target_group)} from sg {self.groups.get(source_group)})"

    def instance_group(self) -> str | None:
        """The instances' security group: the one whose own members it admits (the task-to-task rule)."""
        for r in self.rules:
            if r.get("securityGroupId") and r.get("securityGroupId") == r.get("referencedSecurityGroupId"):
                return r["securityGroupId"]
        return None

    # -- arrows --------------------------------------------------------------------------------

    def internet_arrows(self, view: System) -> None:
        for balancer in self.public_load_balancers():
            for group in balancer["inputs"].get("securityGroups") or []:
                for rule in self.rules:
                    cidr = rule.get("cidrIpv4") or rule.get("cidrIpv6")
                    if rule.get("securityGroupId") == group and cidr in WORLD:
                        view.arrow(
                            "internet", _id(balancer), f"{_ports(rule)} from {cidr} (sg {self.groups.get(group)})"
                        )

    def load_balancer_arrows(self, view: System) -> None:
        listeners = self.plan.of_type("aws:lb/listener:Listener")
        instances = self.instance_group()
        for service in self.services:
            for attachment in service["inputs"].get("loadBalancers") or []:
                arn = attachment.get("targetGroupArn")
                for listener in listeners:
                    actions = listener["inputs"].get("defaultActions") or []
                    if not any(a.get("targetGroupArn") == arn for a in actions):
                        continue
                    balancer = self.plan.referenced(listener["inputs"].get("loadBalancerArn"))
                    if balancer is None:
                        continue
                    groups = balancer["inputs"].get("securityGroups") or []
                    rule = next((self.group_rule(instances, g) for g in groups if self.group_rule(instances, g)), "")
                    port = attachment.get("containerPort")
                    view.arrow(
                        _id(balancer), _id(service), f"container port {_int(port)} on dynamic host ports; {rule}"
                    )

    def consul_arrows(self, view: System) -> None:
        registered = {
            self.tag(s, "seaport:consul-service"): s for s in self.services if self.tag(s, "seaport:consul-service")
        }
        instances = self.instance_group()
        for client in self.services:
            for name in self.tag(client, "seaport:discovers").split():
                server = registered.get(name)
                if server is None:
                    continue
                port = self.main_port(server)
                if self.task_definition(server).get("networkMode") == "host":
                    rule = self.group_rule(instances, instances, containing=port)
                    label = f"{name} found through Consul, port {port} of each instance; {rule}"
                else:  # bridge-mode tasks reach each other on the dynamic host ports Consul hands out
                    rule = self.group_rule(instances, instances, containing=EPHEMERAL_PORTS[0])
                    label = f"{name} found through Consul, container port {port} on a dynamic host port; {rule}"
                if self.tag(client, "seaport:messaging") == "consumer":
                    view.arrow(_id(server), _id(client), f"deliveries ({label})")
                else:
                    view.arrow(_id(client), _id(server), label)

    def amazon_mq_arrows(self, view: System) -> None:
        for broker in self.plan.of_type("aws:mq/broker:Broker"):
            endpoints = {e for i in broker["outputs"].get("instances") or [] for e in i.get("endpoints") or []}
            for service in self.services:
                for container in self.containers(service):
                    url = next(
                        (e["value"] for e in container.get("environment", []) if e["name"] == "RABBITMQ_URL"), None
                    )
                    if url not in endpoints:
                        continue
                    groups = broker["inputs"].get("securityGroups") or []
                    rule = next((self.group_rule(g, self.instance_group()) for g in groups), "")
                    if self.tag(service, "seaport:messaging") == "consumer":
                        view.arrow(_id(broker), _id(service), f"deliveries ({rule})")
                    else:
                        view.arrow(_id(service), _id(broker), rule)

    def agent_arrows(self, view: System) -> None:
        agents = [s for s in self.services if s["inputs"].get("schedulingStrategy") == "DAEMON"]
        servers = self.consul_servers()
        instances = self.instance_group()
        for agent in agents:
            for group in servers:
                template = self.plan.referenced((group["inputs"].get("launchTemplate") or {}).get("id"))
                server_groups = []
                for interface in (template or {}).get("inputs", {}).get("networkInterfaces") or []:
                    server_groups += interface.get("securityGroups") or []
                rule = next((self.group_rule(g, instances) for g in server_groups if self.group_rule(g, instances)), "")
                view.arrow(_id(agent), _id(group), f"joins the servers: {rule}")
            for service in self.services:
                if self.tag(service, "seaport:discovers") or self.tag(service, "seaport:consul-service"):
                    view.arrow(_id(service), _id(agent), "lookups and registrations, HTTP 8500 on the instance")

    def main_port(self, service: dict[str, Any]) -> Any:
        for container in self.containers(service):
            for mapping in container.get("portMappings") or []:
                return _int(mapping.get("containerPort"))
        return "?"


def _ports(rule: dict[str, Any]) -> str:
    low, high = _int(rule.get("fromPort")), _int(rule.get("toPort"))
    return f"{rule.get('ipProtocol', 'tcp')} {low}" + (f"-{high}" if high != low else "")


def _int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _id(resource: dict[str, Any]) -> str:
    kind = resource["type"].rsplit(":", 1)[-1].lower()
    return f"{kind}_{resource['name']}".replace("-", "_")


# -- rendering --------------------------------------------------------------------------------


def mermaid(plan: Plan) -> str:
    """The system view as a Mermaid flowchart (embedded in README by ``make docs``)."""
    view = system(plan)
    lines = ["flowchart LR"]
    outside = [n for n in view.nodes if n not in view.on_instances]
    for node in outside:
        shape = ('(("', '"))') if node == "internet" else ('["', '"]')
        lines.append(f"  {node}{shape[0]}{view.nodes[node]}{shape[1]}")
    lines.append('  subgraph instances["ECS container instances (EC2, one Auto Scaling group)"]')
    lines += [f'    {node}["{view.nodes[node]}"]' for node in view.on_instances]
    lines.append("  end")
    lines += [f'  {a} -->|"{_escape(label)}"| {b}' for a, b, label in view.arrows]
    return "\n".join(lines) + "\n"


def dot(plan: Plan) -> str:
    """The same view in Graphviz DOT (rendered to SVG when ``dot`` is installed)."""
    view = system(plan)
    lines = [
        "digraph system {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#f5f7fa", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for node in view.nodes:
        if node not in view.on_instances:
            shape = ", shape=ellipse" if node == "internet" else ""
            lines.append(f'  {node} [label="{_dot_label(view.nodes[node])}"{shape}];')
    lines.append('  subgraph cluster_instances { label="ECS container instances"; style=rounded;')
    lines += [f'    {node} [label="{_dot_label(view.nodes[node])}"];' for node in view.on_instances]
    lines.append("  }")
    lines += [f'  {a} -> {b} [label="{_dot_label(label)}"];' for a, b, label in view.arrows]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace('"', "'")


def _dot_label(text: str) -> str:
    return text.replace("<br/>", "\\n").replace('"', "'")
