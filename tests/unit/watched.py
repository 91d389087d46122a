"""What a plan's alarms, dashboard and scaling policies read, and whether each metric exists, checked by value.

A metric is ``(namespace, name, dimensions)``. An AWS metric exists when every dimension value is a resource of
the plan (the load balancer's ARN suffix, the ECS service's name in that cluster, ...); a ``Seaport/Messaging``
metric exists when send or receive write it: ``emitted`` holds what they write (from the telemetry contract in
unit tests, from real EMF lines in tests/apps), its ``Cluster`` value included (what the apps read from
METRICS_CLUSTER: ``apps_clusters`` says what a plan gives them).
"""

from __future__ import annotations

import json
import re
from typing import Any

from seaport import rules
from seaport.contract import telemetry
from seaport.dashboard import metrics_of
from seaport.tools.testing import Plan

Metric = tuple[str, str, dict[str, str]]
# (namespace, metric name, dimension names) -> the dimension values seen
Emitted = dict[tuple[str, str, frozenset[str]], set[tuple[tuple[str, str], ...]]]

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ECS_CLUSTER = "aws:ecs/cluster:Cluster"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
SCALING_POLICY = "aws:appautoscaling/policy:Policy"
MQ = "aws:mq/broker:Broker"


def alarm_metrics(plan: Plan) -> list[tuple[str, Metric]]:
    """(alarm name, metric) of every metric every alarm of the plan reads."""
    return [(a["name"], m) for a in plan.of_type(ALARM) for m in rules.watched_metrics(a["inputs"])]


def dashboard_metrics(plan: Plan) -> list[tuple[str, Metric]]:
    return [(d["name"], m) for d in plan.of_type(DASHBOARD) for m in metrics_of(d["inputs"]["dashboardBody"])]


def scaling_metrics(plan: Plan) -> list[tuple[str, Metric]]:
    """Metrics of target tracking policies with a customized (metric math) specification."""
    found = []
    for policy in plan.of_type(SCALING_POLICY):
        spec = (policy["inputs"].get("targetTrackingScalingPolicyConfiguration") or {}).get(
            "customizedMetricSpecification"
        ) or {}
        for query in spec.get("metrics") or []:
            metric = (query.get("metricStat") or {}).get("metric")
            if metric:
                dimensions = {d["name"]: d["value"] for d in metric.get("dimensions") or []}
                found.append((policy["name"], (metric["namespace"], metric["metricName"], dimensions)))
    return found


def contract_emitted(queue: str, cluster: str) -> Emitted:
    """What send and receive write for ``queue`` when their METRICS_CLUSTER is ``cluster``, by the telemetry
    contract."""
    emitted: Emitted = {}
    for app, names in telemetry.APP_METRICS.items():
        for name in names:
            key = (telemetry.NAMESPACE, name, frozenset(telemetry.APP_DIMENSIONS))
            emitted.setdefault(key, set()).add(tuple(sorted(telemetry.app_dimensions(cluster, app, queue).items())))
    for name in telemetry.QUEUE_METRICS:
        key = (telemetry.NAMESPACE, name, frozenset(telemetry.QUEUE_DIMENSIONS))
        emitted.setdefault(key, set()).add(tuple(sorted(telemetry.queue_dimensions(cluster, queue).items())))
    return emitted


def apps_clusters(plan: Plan) -> dict[str, str]:
    """Container name -> its METRICS_CLUSTER, for every container of the plan that is given one (send, receive)."""
    found = {}
    for task in plan.of_type(TASK_DEFINITION):
        for container in json.loads(task["inputs"]["containerDefinitions"]):
            variables = {e["name"]: e["value"] for e in container.get("environment") or []}
            if telemetry.CLUSTER_VARIABLE in variables:
                found[container["name"]] = variables[telemetry.CLUSTER_VARIABLE]
    return found


def cluster_name(plan: Plan) -> str:
    """The name of the plan's one ECS cluster."""
    return plan.one(ECS_CLUSTER)["outputs"]["name"]


def emf_emitted(records: list[dict[str, Any]]) -> Emitted:
    """What real EMF records declare: each directive's namespace, metric names and dimension sets, with the
    record's dimension values."""
    emitted: Emitted = {}
    for record in records:
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                values = tuple(sorted((key, record[key]) for key in dimension_set))
                for metric in directive["Metrics"]:
                    if metric["Name"] in record:
                        key = (directive["Namespace"], metric["Name"], frozenset(dimension_set))
                        emitted.setdefault(key, set()).add(values)
    return emitted


def plan_values(plan: Plan) -> dict[str, set[Any]]:
    """Dimension name -> the values the plan's resources give it."""
    by_type = {
        "LoadBalancer": ("aws:lb/loadBalancer:LoadBalancer", "arnSuffix"),
        "TargetGroup": ("aws:lb/targetGroup:TargetGroup", "arnSuffix"),
        "ClusterName": (ECS_CLUSTER, "name"),
        "AutoScalingGroupName": ("aws:autoscaling/group:Group", "name"),
    }
    values = {key: {r["outputs"].get(prop) for r in plan.of_type(token)} for key, (token, prop) in by_type.items()}
    values["Broker"] = {r["outputs"].get("brokerName") or r["outputs"].get("name") for r in plan.of_type(MQ)}
    values["ServiceName"] = {
        (str(r["inputs"].get("cluster", "")).rsplit("/", 1)[-1], r["outputs"]["name"])
        for r in plan.of_type("aws:ecs/service:Service")
    }
    return values


def problems(metric: Metric, plan: Plan, emitted: Emitted) -> list[str]:
    """Why ``metric`` would have no data: a dimension no resource of the plan has, or a record no app writes."""
    namespace, name, dimensions = metric
    if namespace == telemetry.NAMESPACE:
        seen = emitted.get((namespace, name, frozenset(dimensions)))
        if not seen:
            return [f"{name} {sorted(dimensions)}: no app writes this metric with these dimensions"]
        if tuple(sorted(dimensions.items())) not in seen:
            return [f"{name} {dimensions}: the apps write it only for {sorted(seen)}"]
        return []
    if not namespace.startswith(("AWS/", "ECS/")):
        return [f"{namespace} is neither an AWS namespace nor the apps'"]
    values = plan_values(plan)
    found = []
    for key, value in dimensions.items():
        if key == "ServiceName":
            if (dimensions.get("ClusterName"), value) not in values["ServiceName"]:
                found.append(f"{name}: no ECS service {value!r} in cluster {dimensions.get('ClusterName')!r}")
        elif key in values:
            if value not in values[key]:
                found.append(f"{name}: {key}={value!r} is no resource of the plan")
        else:
            found.append(f"{name}: dimension {key} is not one seaport's resources give")
    return found


def dashboard_body(plan: Plan) -> dict[str, Any]:
    return json.loads(plan.one(DASHBOARD)["inputs"]["dashboardBody"])


def undefined_ids(expression: str, ids: set[str]) -> set[str]:
    """Lower-case names in a metric math expression that are no id of its metrics (functions are upper case)."""
    return set(re.findall(r"\b[a-z][A-Za-z0-9_]*\b", expression)) - ids
