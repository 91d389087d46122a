"""The CloudWatch dashboard of a seaport system, built as Python data and serialized with ``json.dumps``.

``body(view)`` lays the system out as its operators think of it, one band of
widgets per part: the alarms first, then each web service (requests, 5xx,
latency, targets, tasks with the scaling thresholds drawn in), messaging
(publish, confirm and consume rates, backlog and consumers, dead letters,
broker memory, backlog per receive task), every watched service's running
tasks, Consul (servers, agents) and capacity (cluster CPU and memory
reservation, instances). ``view`` holds resolved values only (``Monitoring``
resolves the outputs first); the body follows CloudWatch's "Dashboard Body
Structure and Syntax" (widgets of type metric, text and alarm on a 24-column
grid; each metric as ``[namespace, name, dimension, value, ..., {options}]``,
each expression as ``[{"expression", "label", "id"}]``).

``metrics_of(body)`` reads every metric a body graphs, for checks by value.
"""

from __future__ import annotations

import json
from typing import Any

from .contract import telemetry

ALB = "AWS/ApplicationELB"
ECS = "AWS/ECS"
AUTOSCALING = "AWS/AutoScaling"
AMAZON_MQ = "AWS/AmazonMQ"
PERIOD = 60
WIDTH = 24  # the grid's columns
RED, ORANGE, GREY = "#d62728", "#ff7f0e", "#7f7f7f"


def metric(namespace: str, name: str, dimensions: dict[str, str], **options: Any) -> list[Any]:
    """One metric line: ``[namespace, name, dimension, value, ..., {options}]`` (options only when given)."""
    line: list[Any] = [namespace, name]
    for key, value in dimensions.items():
        line += [key, value]
    return [*line, options] if options else line


def expression(text: str, label: str, id_: str, **options: Any) -> list[dict[str, Any]]:
    return [{"expression": text, "label": label, "id": id_, **options}]


def line(value: float, label: str, color: str = RED, axis: str = "left") -> dict[str, Any]:
    """A horizontal annotation (a threshold drawn across a graph)."""
    return {"value": value, "label": label, "color": color, "yAxis": axis}


class Grid:
    """Places widgets left to right, starting a new band when a row is full."""

    def __init__(self, region: str):
        self.region = region
        self.widgets: list[dict[str, Any]] = []
        self.x = self.y = self.row_height = 0

    def place(self, kind: str, width: int, height: int, properties: dict[str, Any]) -> None:
        if self.x + width > WIDTH:
            self.band()
        self.widgets.append(
            {"type": kind, "x": self.x, "y": self.y, "width": width, "height": height, "properties": properties}
        )
        self.x += width
        self.row_height = max(self.row_height, height)

    def band(self) -> None:
        """Start the next band of widgets below everything placed so far."""
        self.y += self.row_height
        self.x = self.row_height = 0

    def heading(self, markdown: str) -> None:
        self.band()
        self.place("text", WIDTH, 1, {"markdown": markdown, "background": "transparent"})
        self.band()

    def graph(self, title: str, metrics: list[list[Any]], width: int = 8, height: int = 6, **extra: Any) -> None:
        properties = {
            "title": title,
            "view": "timeSeries",
            "stacked": False,
            "region": self.region,
            "period": PERIOD,
            "metrics": metrics,
            **{key: value for key, value in extra.items() if value},
        }
        self.place("metric", width, height, properties)


def body(view: dict[str, Any]) -> str:
    """The dashboard body (JSON) of ``view``: see ``Monitoring`` for its keys."""
    grid = Grid(view["region"])
    grid.place("text", WIDTH, 2, {"markdown": view["title"]})
    grid.band()
    if view["alarms"]:
        grid.place(
            "alarm", WIDTH, 4, {"title": "Alarms", "alarms": view["alarms"][:100], "sortBy": "stateUpdatedTimestamp"}
        )
    for web in view["web_services"]:
        _web_service(grid, web, view)
    if view.get("messaging"):
        _messaging(grid, view["messaging"], view)
    if view["services"]:
        grid.heading("## Services: running tasks")
        lines = [_running(view, service["service"], label=service["name"]) for service in view["services"]]
        grid.graph("Running tasks", lines, width=WIDTH)
    if view.get("consul"):
        _consul(grid, view["consul"], view)
    _capacity(grid, view)
    return json.dumps({"start": "-PT6H", "periodOverride": "inherit", "widgets": grid.widgets})


def _running(view: dict[str, Any], service: str, **options: Any) -> list[Any]:
    """A service's running tasks, from the metric the alarms use (Container Insights' or ECS's)."""
    namespace, name, statistic = view["running_tasks"]
    return metric(namespace, name, {"ClusterName": view["cluster"], "ServiceName": service}, stat=statistic, **options)


def _web_service(grid: Grid, web: dict[str, Any], view: dict[str, Any]) -> None:
    balancer = {"LoadBalancer": web["load_balancer"]}
    target = {"LoadBalancer": web["load_balancer"], "TargetGroup": web["target_group"]}
    grid.heading(f"## {web['name']}: the load balancer and its service")
    grid.graph("Requests per minute", [metric(ALB, "RequestCount", balancer, stat="Sum", label="requests")])
    grid.graph(
        "5xx, % of requests",
        [
            metric(ALB, "HTTPCode_ELB_5XX_Count", balancer, stat="Sum", id="elb", visible=False),
            metric(ALB, "HTTPCode_Target_5XX_Count", target, stat="Sum", id="target", visible=False),
            metric(ALB, "RequestCount", balancer, stat="Sum", id="requests", visible=False),
            expression("100 * FILL(elb, 0) / requests", "load balancer 5xx %", "elb_share"),
            expression("100 * FILL(target, 0) / requests", "target 5xx %", "target_share"),
        ],
        annotations={"horizontal": [line(web["error_rate_percent"], "alarm")]},
        yAxis={"left": {"min": 0}},
    )
    grid.graph(
        "Response time (s)",
        [
            metric(ALB, "TargetResponseTime", target, stat="p50", label="p50"),
            metric(ALB, "TargetResponseTime", target, stat="p99", label="p99"),
        ],
        annotations={"horizontal": [line(web["latency_seconds"], "p99 alarm")]},
    )
    grid.graph(
        "Targets",
        [
            metric(ALB, "HealthyHostCount", target, stat="Minimum", label="healthy"),
            metric(ALB, "UnHealthyHostCount", target, stat="Maximum", label="unhealthy", color=RED),
        ],
    )
    thresholds = [line(value, label, ORANGE, "right") for label, value in web["cpu_thresholds"]]
    bounds = [line(web["min_tasks"], "min tasks", GREY), line(web["max_tasks"], "max tasks", GREY)]
    service = {"ClusterName": view["cluster"], "ServiceName": web["service"]}
    grid.graph(
        "Tasks, and CPU against the scaling thresholds",
        [
            _running(view, web["service"], label="running tasks"),
            metric(ECS, "CPUUtilization", service, stat="Average", label="CPU %", yAxis="right"),
        ],
        width=16,
        annotations={"horizontal": bounds + thresholds},
        yAxis={"left": {"min": 0}, "right": {"min": 0, "max": 100}},
    )


def _messaging(grid: Grid, messaging: dict[str, Any], view: dict[str, Any]) -> None:
    queue, cluster = messaging["queue"], view["cluster"]
    per_queue = telemetry.queue_dimensions(cluster, queue)  # this stack's queue: its cluster's name tells it apart
    grid.heading(f"## Messaging: queue `{queue}`")
    rates = [
        metric(telemetry.NAMESPACE, name, telemetry.app_dimensions(cluster, app, queue), stat="Sum", label=name)
        for app, names in telemetry.APP_METRICS.items()
        for name in names
    ]
    grid.graph("Messages per minute: published, confirmed, processed, failed", rates)
    grid.graph(
        "Backlog (ready messages) and consumers",
        [
            metric(telemetry.NAMESPACE, telemetry.QUEUE_DEPTH, per_queue, stat="Maximum", label="ready"),
            metric(
                telemetry.NAMESPACE,
                telemetry.CONSUMERS,
                per_queue,
                stat="Minimum",
                label="consumers",
                yAxis="right",
            ),
        ],
        annotations={"horizontal": [line(messaging["backlog_messages"], "backlog alarm")]},
        yAxis={"left": {"min": 0}, "right": {"min": 0}},
    )
    grid.graph(
        f"Dead letters (in {queue}.dead)",
        [metric(telemetry.NAMESPACE, telemetry.DEAD_LETTER_DEPTH, per_queue, stat="Maximum", label="dead letters")],
        annotations={"horizontal": [line(1, "alarm")]},
    )
    _broker_memory(grid, messaging, view)
    if messaging.get("receive_service"):
        service = {"ClusterName": view["cluster"], "ServiceName": messaging["receive_service"]}
        namespace, name, statistic = messaging["receive_running_tasks"]
        grid.graph(
            "receive: ready messages per task (what its scaling tracks)",
            [
                metric(
                    telemetry.NAMESPACE, telemetry.QUEUE_DEPTH, per_queue, stat="Maximum", id="depth", visible=False
                ),
                metric(namespace, name, service, stat=statistic, id="tasks", label="receive tasks", yAxis="right"),
                expression("depth / tasks", "ready messages per task", "backlog_per_task"),
            ],
            width=16,
            annotations={"horizontal": [line(messaging["backlog_target"], "target", ORANGE)]},
            yAxis={"left": {"min": 0}, "right": {"min": 0}},
        )


def _broker_memory(grid: Grid, messaging: dict[str, Any], view: dict[str, Any]) -> None:
    if messaging.get("amazon_mq_broker"):
        # Amazon MQ for RabbitMQ 4.x publishes broker metrics only (no per-queue ones): memory from AWS/AmazonMQ.
        broker = {"Broker": messaging["amazon_mq_broker"]}
        lines = [
            metric(AMAZON_MQ, "RabbitMQMemUsed", broker, stat="Maximum", id="used", visible=False),
            metric(AMAZON_MQ, "RabbitMQMemLimit", broker, stat="Minimum", id="limit", visible=False),
            expression("100 * used / limit", "memory, % of the watermark", "memory"),
        ]
        title = "Broker memory, % of its watermark (Amazon MQ)"
        drawn = [line(messaging["memory_alarm_percent"], "alarm")]
    else:
        # A broker on the cluster: ECS measures its task's memory, the watermark is a share of the same.
        service = {"ClusterName": view["cluster"], "ServiceName": messaging["broker_service"]}
        lines = [metric(ECS, "MemoryUtilization", service, stat="Maximum", label="memory, % of the task's")]
        share = messaging["watermark_share"]
        title = "Broker memory, % of its task's (watermark drawn)"
        drawn = [
            line(round(messaging["memory_alarm_percent"] * share, 2), "alarm"),
            line(round(100 * share, 2), "watermark: publishers blocked", GREY),
        ]
    grid.graph(title, lines, annotations={"horizontal": drawn}, yAxis={"left": {"min": 0}})


def _consul(grid: Grid, consul: dict[str, Any], view: dict[str, Any]) -> None:
    grid.heading("## Consul")
    group = {"AutoScalingGroupName": consul["servers_group"]}
    grid.graph(
        "Servers in service",
        [metric(AUTOSCALING, "GroupInServiceInstances", group, stat="Minimum", label="servers")],
        width=12,
        annotations={"horizontal": [line(consul["servers"], "configured")]},
        yAxis={"left": {"min": 0}},
    )
    agents = [_running(view, consul["agent_service"], label="agents")] if consul.get("agent_service") else []
    if view.get("autoscaling_group"):
        instances = {"AutoScalingGroupName": view["autoscaling_group"]}
        agents.append(
            metric(AUTOSCALING, "GroupInServiceInstances", instances, stat="Minimum", label="cluster instances")
        )
    if agents:
        grid.graph("Agents (one per instance)", agents, width=12, yAxis={"left": {"min": 0}})


def _capacity(grid: Grid, view: dict[str, Any]) -> None:
    grid.heading("## Capacity")
    cluster = {"ClusterName": view["cluster"]}
    grid.graph(
        "Cluster reservation (%)",
        [
            metric(ECS, "CPUReservation", cluster, stat="Maximum", label="CPU reserved"),
            metric(ECS, "MemoryReservation", cluster, stat="Maximum", label="memory reserved"),
        ],
        width=12,
        yAxis={"left": {"min": 0, "max": 100}},
    )
    if view.get("autoscaling_group"):
        group = {"AutoScalingGroupName": view["autoscaling_group"]}
        grid.graph(
            "Instances",
            [
                metric(AUTOSCALING, "GroupInServiceInstances", group, stat="Minimum", label="in service"),
                metric(AUTOSCALING, "GroupDesiredCapacity", group, stat="Maximum", label="desired"),
            ],
            width=12,
            yAxis={"left": {"min": 0}},
        )


def metrics_of(text: str) -> list[tuple[str, str, dict[str, str]]]:
    """``(namespace, metric name, dimensions)`` of every metric graphed by a dashboard body (expressions and
    the ``"."`` shorthand resolved against the previous line)."""
    found = []
    for widget in json.loads(text)["widgets"]:
        previous: list[Any] = []
        for entry in (widget.get("properties") or {}).get("metrics") or []:
            if entry and isinstance(entry[0], dict):
                continue  # an expression
            parts = [p for p in entry if not isinstance(p, dict)]
            parts = [previous[i] if p == "." and i < len(previous) else p for i, p in enumerate(parts)]
            previous = parts
            found.append((parts[0], parts[1], dict(zip(parts[2::2], parts[3::2], strict=True))))
    return found
