"""Topology diagrams generated from a plan's resource graph (never drawn by hand).

Nodes are the components and the resources a reader looks for (load
balancer, services, Auto Scaling group, broker, images); a component that
holds shown nodes becomes a box around them. An arrow ``A --> B`` means some
resource under A names a resource under B by id, ARN or name (this is how
references are followed in the plan), so the arrows are the real wiring.
World-open ingress rules add an ``Internet`` node pointing at what they open.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .testing import Plan

NOTABLE = {
    "aws:lb/loadBalancer:LoadBalancer": "Application Load Balancer",
    "aws:ecs/service:Service": "ECS service",
    "aws:ecs/cluster:Cluster": "ECS cluster",
    "aws:autoscaling/group:Group": "Auto Scaling group",
    "aws:mq/broker:Broker": "Amazon MQ broker",
    "aws:ec2/vpc:Vpc": "VPC",
}
WORLD = ("0.0.0.0/0", "::/0")


class Graph:
    """Displayed nodes, their nesting and the references between them."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.by_urn = {r["urn"]: r for r in plan.resources}
        self.shown = [r for r in plan.resources if not r["custom"] or r["type"] in NOTABLE]
        self.shown_urns = {r["urn"] for r in self.shown}
        self.ids = {urn: f"n{i}" for i, urn in enumerate(r["urn"] for r in self.shown)}
        self.edges = self._edges()

    def label(self, r: dict[str, Any]) -> str:
        kind = NOTABLE.get(r["type"]) or r["type"].rsplit(":", 1)[-1]
        return f"{r['name']}<br/><i>{kind}</i>"

    def display(self, urn: str | None) -> str | None:
        """The nearest shown resource at or above ``urn``."""
        while urn and urn not in self.shown_urns:
            urn = self.by_urn.get(urn, {}).get("parent")
        return urn

    def children(self, urn: str | None) -> list[dict[str, Any]]:
        return [r for r in self.shown if self.display(r["parent"]) == urn]

    def walk(self, urn: str | None = None, depth: int = 1) -> Iterator[tuple[str, dict[str, Any], int]]:
        """The nesting as events: ("open", box, depth) ... ("close", box, depth), and ("node", r, depth)."""
        for r in self.children(urn):
            if self.children(r["urn"]):
                yield "open", r, depth
                yield from self.walk(r["urn"], depth + 1)
                yield "close", r, depth
            else:
                yield "node", r, depth

    def is_ancestor(self, upper: str, lower: str) -> bool:
        urn = self.by_urn.get(lower, {}).get("parent")
        while urn:
            if urn == upper:
                return True
            urn = self.by_urn.get(urn, {}).get("parent")
        return False

    def _edges(self) -> list[tuple[str, str, str]]:
        keys: dict[str, str] = {}
        for r in self.plan.resources:
            if r["custom"]:
                for prop in ("id", "arn", "name"):
                    value = r["outputs"].get(prop)
                    if isinstance(value, str) and len(value) >= 8:
                        keys.setdefault(value, r["urn"])
        pattern = re.compile("|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True)))
        edges: dict[tuple[str, str], str] = {}
        for r in self.plan.resources:
            if not r["custom"]:
                continue
            source = self.display(r["urn"])
            for text in _strings(r["inputs"]):
                for match in pattern.finditer(text):
                    target = self.display(keys[match.group(0)])
                    if self._linkable(source, target):
                        edges.setdefault((source, target), "")
            if r["type"] == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
                cidr = r["inputs"].get("cidrIpv4") or r["inputs"].get("cidrIpv6")
                if cidr in WORLD:
                    target = self._opened_by(r["inputs"].get("securityGroupId", ""), keys)
                    port = r["inputs"].get("fromPort")
                    label = f"{r['inputs'].get('ipProtocol', 'tcp')}/{_int(port)}"
                    previous = edges.get(("internet", target))
                    edges[("internet", target)] = f"{previous}, {label}" if previous else label
        return self._most_specific(edges)

    def _opened_by(self, group_id: str, keys: dict[str, str]) -> str | None:
        """What a world-open rule exposes: the load balancer using the group, else the group's owner."""
        for r in self.plan.resources:
            if r["type"] == "aws:lb/loadBalancer:LoadBalancer" and group_id in (
                r["inputs"].get("securityGroups") or []
            ):
                return self.display(r["urn"])
        return self.display(keys.get(group_id))

    def _most_specific(self, edges: dict[tuple[str, str], str]) -> list[tuple[str, str, str]]:
        """Drop an arrow when a more precise one says the same: to a node inside the target, or from an
        enclosing node of the source."""
        kept = []
        for (source, target), label in edges.items():
            finer_target = any(s == source and t != target and self.is_ancestor(target, t) for (s, t) in edges)
            said_above = any(
                t == target and s != source and s != "internet" and self.is_ancestor(s, source) for (s, t) in edges
            )
            if not (finer_target or said_above):
                kept.append((source, target, label))
        return kept

    def _linkable(self, source: str | None, target: str | None) -> bool:
        if not source or not target or source == target:
            return False
        return not (self.is_ancestor(source, target) or self.is_ancestor(target, source))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def mermaid(plan: Plan) -> str:
    """A Mermaid flowchart of the plan's topology."""
    graph = Graph(plan)
    lines = ["flowchart LR"]

    for event, r, depth in graph.walk():
        indent, node = "  " * depth, graph.ids[r["urn"]]
        if event == "open":
            lines.append(f'{indent}subgraph {node}["{graph.label(r)}"]')
        elif event == "close":
            lines.append(f"{indent}end")
        else:
            lines.append(f'{indent}{node}["{graph.label(r)}"]')
    if any(a == "internet" for a, _, _ in graph.edges):
        lines.append('  internet(("Internet"))')
    for source, target, label in graph.edges:
        a = "internet" if source == "internet" else graph.ids[source]
        arrow = f"-->|{label}|" if label else "-->"
        lines.append(f"  {a} {arrow} {graph.ids[target]}")
    return "\n".join(lines) + "\n"


def dot(plan: Plan) -> str:
    """The same topology in Graphviz DOT (rendered to SVG when ``dot`` is installed)."""
    graph = Graph(plan)
    lines = [
        "digraph topology {",
        "  rankdir=LR; compound=true;",
        '  node [shape=box, style="rounded,filled", fillcolor="#f5f7fa", fontname="Helvetica"];',
    ]

    def label(r: dict[str, Any]) -> str:
        return graph.label(r).replace("<br/>", "\\n").replace("<i>", "").replace("</i>", "")

    for event, r, depth in graph.walk():
        indent, node = "  " * depth, graph.ids[r["urn"]]
        if event == "open":
            lines.append(f"{indent}subgraph cluster_{node} {{")
            lines.append(f'{indent}  label="{label(r)}"; style=rounded;')
            lines.append(f'{indent}  {node} [label="{label(r)}", shape=note];')
        elif event == "close":
            lines.append(f"{indent}}}")
        else:
            lines.append(f'{indent}{node} [label="{label(r)}"];')
    if any(a == "internet" for a, _, _ in graph.edges):
        lines.append('  internet [label="Internet", shape=ellipse];')
    for source, target, text in graph.edges:
        a = "internet" if source == "internet" else graph.ids[source]
        attributes = f' [label="{text}"]' if text else ""
        lines.append(f"  {a} -> {graph.ids[target]}{attributes};")
    lines.append("}")
    return "\n".join(lines) + "\n"
