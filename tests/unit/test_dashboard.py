"""The dashboard: valid in CloudWatch's dashboard body schema, laid out like the system, its thresholds the alarms'.

``body_problems`` is written from CloudWatch's "Dashboard Body Structure and Syntax" (API reference): the
overall structure, the widgets array, metric widgets and the format of each metric in their array, rendering
properties, annotations, yAxis, text widgets and alarm status widgets.
"""

import json
import re

import pytest

from seaport import dashboard
from seaport.contract import telemetry
from tests.unit import watched
from tests.unit.monitored import PORTAL_SCALING, QUEUE, RECEIVE_SCALING, system_plan

TOP = {"widgets", "variables", "start", "end", "periodOverride"}
METRIC_PROPERTIES = {
    "accountId", "annotations", "liveData", "legend", "metrics", "period", "region", "sparkline", "stacked", "stat",
    "table", "timezone", "title", "view", "yAxis",
}  # fmt: skip
RENDERING = {"accountId", "color", "label", "period", "stat", "visible", "yAxis", "id", "region"}
EXPRESSION = {"expression", "label", "id", "color", "period", "visible", "yAxis", "region", "accountId"}
STAT = re.compile(r"^(SampleCount|Average|Sum|Minimum|Maximum|p\d{1,2}(\.\d+)?)$")
ID = re.compile(r"^[a-z][A-Za-z0-9_]*$")
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
ALARM_ARN = re.compile(r"^arn:aws[a-z-]*:cloudwatch:[a-z0-9-]+:\d{12}:alarm:.+$")


def body_problems(text: str) -> list[str]:
    """Every way ``text`` departs from CloudWatch's dashboard body schema ([] when it is valid)."""
    document = json.loads(text)
    problems = [f"unknown top-level key {k}" for k in set(document) - TOP]
    widgets = document.get("widgets")
    if not isinstance(widgets, list) or len(widgets) > 500:
        return [*problems, "widgets must be an array of 0-500 widgets"]
    if document.get("periodOverride") not in (None, "auto", "inherit"):
        problems.append("periodOverride must be auto or inherit")
    if "start" in document and not re.match(r"^-P(T\d+[MH]|\d+[DWM])$", document["start"]):
        problems.append(f"start {document['start']!r} is not a relative time (-PT6H, -P3D, ...)")
    for index, widget in enumerate(widgets):
        problems += [f"widget {index}: {p}" for p in widget_problems(widget)]
    return problems + overlaps(widgets)


def widget_problems(widget: dict) -> list[str]:
    problems = []
    kind, properties = widget.get("type"), widget.get("properties")
    if kind not in ("metric", "text", "log", "alarm", "explorer"):
        problems.append(f"type {kind!r}")
    if ("x" in widget) != ("y" in widget):
        problems.append("x and y go together")
    x, y, width, height = (widget.get(k) for k in ("x", "y", "width", "height"))
    if not (isinstance(x, int) and 0 <= x <= 23 and isinstance(y, int) and y >= 0):
        problems.append(f"x={x!r} y={y!r} off the grid")
    if not (isinstance(width, int) and 1 <= width <= 24 and isinstance(height, int) and 1 <= height <= 1000):
        problems.append(f"width={width!r} height={height!r}")
    elif isinstance(x, int) and x + width > 24:
        problems.append("wider than the grid")
    if not isinstance(properties, dict):
        return [*problems, "properties must be an object"]
    check = {"metric": metric_widget_problems, "text": text_widget_problems, "alarm": alarm_widget_problems}
    return problems + check.get(kind, lambda p: [f"{kind} widgets are not used here"])(properties)


def metric_widget_problems(p: dict) -> list[str]:
    problems = [f"unknown property {k}" for k in set(p) - METRIC_PROPERTIES]
    if not isinstance(p.get("region"), str) or not p["region"]:
        problems.append("region is required")
    if "metrics" not in p and not (p.get("annotations") or {}).get("alarms"):
        problems.append("metrics is required (without an alarm annotation)")
    metrics = p.get("metrics", [])
    if not isinstance(metrics, list) or len(metrics) > 500:
        return [*problems, "metrics must be an array of up to 500"]
    if p.get("view", "timeSeries") not in ("timeSeries", "singleValue", "gauge", "bar", "pie", "table"):
        problems.append(f"view {p['view']!r}")
    if "period" in p and not (isinstance(p["period"], int) and p["period"] >= 60 and p["period"] % 60 == 0):
        problems.append(f"period {p['period']!r} is not a multiple of 60")
    if "stat" in p and not STAT.match(str(p["stat"])):
        problems.append(f"stat {p['stat']!r}")
    ids: set[str] = set()
    expressions = []
    for entry in metrics:
        found, ident, text = metric_entry_problems(entry)
        problems += found
        if ident:
            problems += [f"id {ident} repeats"] if ident in ids else []
            ids.add(ident)
        if text:
            expressions.append(text)
    for text in expressions:
        problems += [f"expression {text!r} uses undefined {sorted(u)}" for u in [watched.undefined_ids(text, ids)] if u]
    problems += annotation_problems(p.get("annotations") or {})
    for side, axis in (p.get("yAxis") or {}).items():
        if side not in ("left", "right") or set(axis) - {"min", "max", "label", "showUnits"}:
            problems.append(f"yAxis {side}: {axis}")
    return problems


def metric_entry_problems(entry) -> tuple[list[str], str | None, str | None]:
    """Problems of one line of ``metrics``; its id and (for an expression) its text."""
    if not isinstance(entry, list) or not entry:
        return ["a metric must be a non-empty array"], None, None
    if isinstance(entry[0], dict):  # [ {"expression", "label", "id"} ]
        options = entry[0]
        problems = (
            [f"expression line has unknown keys {set(options) - EXPRESSION}"] if set(options) - EXPRESSION else []
        )
        if len(entry) != 1 or not isinstance(options.get("expression"), str):
            problems.append(f"an expression line is one object with an expression: {entry}")
        ident = options.get("id")
        if ident is not None and not ID.match(ident):
            problems.append(f"id {ident!r} must start with a lower-case letter")
        return problems, ident, options.get("expression")
    options = entry[-1] if isinstance(entry[-1], dict) else {}
    parts = entry[:-1] if options else entry
    problems = []
    if len(parts) < 2 or len(parts) % 2 or not all(isinstance(v, str) and v for v in parts):
        problems.append(f"[namespace, name, (dimension, value)...] expected: {entry}")
    if set(options) - RENDERING:
        problems.append(f"unknown rendering properties {set(options) - RENDERING}")
    if "stat" in options and not STAT.match(str(options["stat"])):
        problems.append(f"stat {options['stat']!r}")
    if "yAxis" in options and options["yAxis"] not in ("left", "right"):
        problems.append(f"yAxis {options['yAxis']!r}")
    if "color" in options and not COLOR.match(options["color"]):
        problems.append(f"color {options['color']!r}")
    ident = options.get("id")
    if ident is not None and not ID.match(ident):
        problems.append(f"id {ident!r} must start with a lower-case letter")
    return problems, ident, None


def annotation_problems(annotations: dict) -> list[str]:
    problems = [f"unknown annotation kind {k}" for k in set(annotations) - {"horizontal", "vertical", "alarms"}]
    if annotations.get("alarms") and (annotations.get("horizontal") or annotations.get("vertical")):
        problems.append("an alarm annotation excludes horizontal and vertical ones")
    for line in annotations.get("horizontal", []):
        for item in line if isinstance(line, list) else [line]:
            if not isinstance(item.get("value"), int | float) or isinstance(item.get("value"), bool):
                problems.append(f"annotation value {item.get('value')!r}")
            if set(item) - {"value", "label", "color", "fill", "yAxis", "visible"}:
                problems.append(f"annotation keys {set(item)}")
            if item.get("fill", "none") not in ("above", "below", "none") or item.get("yAxis", "left") not in (
                "left",
                "right",
            ):
                problems.append(f"annotation {item}")
            if "color" in item and not COLOR.match(item["color"]):
                problems.append(f"annotation color {item['color']!r}")
    return problems


def text_widget_problems(p: dict) -> list[str]:
    problems = [f"unknown property {k}" for k in set(p) - {"markdown", "background"}]
    if not isinstance(p.get("markdown"), str):
        problems.append("markdown is required")
    if p.get("background", "solid") not in ("solid", "transparent"):
        problems.append(f"background {p['background']!r}")
    return problems


def alarm_widget_problems(p: dict) -> list[str]:
    problems = [f"unknown property {k}" for k in set(p) - {"alarms", "sortBy", "states", "title"}]
    alarms = p.get("alarms")
    if not isinstance(alarms, list) or not 1 <= len(alarms) <= 100 or not all(ALARM_ARN.match(a) for a in alarms):
        problems.append("alarms must be 1-100 alarm ARNs")
    if p.get("sortBy", "default") not in ("default", "stateUpdatedTimestamp", "timestamp"):
        problems.append(f"sortBy {p['sortBy']!r}")
    if set(p.get("states", [])) - {"ALARM", "INSUFFICIENT_DATA", "OK"}:
        problems.append(f"states {p['states']}")
    return problems


def overlaps(widgets: list[dict]) -> list[str]:
    cells: dict[tuple[int, int], int] = {}
    problems = []
    for index, w in enumerate(widgets):
        for x in range(w["x"], w["x"] + w["width"]):
            for y in range(w["y"], w["y"] + w["height"]):
                if (x, y) in cells:
                    problems.append(f"widgets {cells[(x, y)]} and {index} overlap at {x},{y}")
                    break
                cells[(x, y)] = index
    return problems[:5]


# -- the validator itself catches what it should --------------------------------------------------------------


@pytest.mark.parametrize(
    ("widget", "message"),
    [
        ({"type": "metric", "x": 0, "y": 0, "width": 6, "height": 6, "properties": {"metrics": []}}, "region"),
        ({"type": "metric", "x": 20, "y": 0, "width": 6, "height": 6, "properties": {"region": "r"}}, "wider"),
        ({"type": "chart", "x": 0, "y": 0, "width": 6, "height": 6, "properties": {}}, "type"),
        (
            {
                "type": "metric",
                "x": 0,
                "y": 0,
                "width": 6,
                "height": 6,
                "properties": {"region": "r", "metrics": [["AWS/ECS", "CPUUtilization", "ClusterName"]]},
            },
            "[namespace, name",
        ),
        (
            {
                "type": "metric",
                "x": 0,
                "y": 0,
                "width": 6,
                "height": 6,
                "properties": {"region": "r", "metrics": [[{"expression": "a / b", "id": "e1"}]]},
            },
            "undefined",
        ),
        (
            {
                "type": "metric",
                "x": 0,
                "y": 0,
                "width": 6,
                "height": 6,
                "properties": {"region": "r", "metrics": [["A/B", "C", {"stat": "Mean"}]]},
            },
            "stat",
        ),
        ({"type": "text", "x": 0, "y": 0, "width": 6, "height": 6, "properties": {}}, "markdown"),
        ({"type": "alarm", "x": 0, "y": 0, "width": 6, "height": 6, "properties": {"alarms": ["x"]}}, "alarm ARNs"),
    ],
)
def test_the_schema_check_rejects_what_cloudwatch_rejects(widget, message):
    problems = body_problems(json.dumps({"widgets": [widget]}))
    assert any(message in p for p in problems), problems


# -- the dashboards of the monitored systems -------------------------------------------------------------------


def widgets(plan, kind="metric"):
    return [w for w in watched.dashboard_body(plan)["widgets"] if w["type"] == kind]


def titled(plan, start):
    (found,) = [w["properties"] for w in widgets(plan) if w["properties"]["title"].startswith(start)]
    return found


def horizontal(properties):
    return {a["label"]: (a["value"], a["yAxis"]) for a in properties["annotations"]["horizontal"]}


def test_the_dashboard_body_is_valid_json_in_cloudwatchs_widget_schema(any_system):
    text = any_system.one(watched.DASHBOARD)["inputs"]["dashboardBody"]
    assert body_problems(text) == []


def test_name_and_url_are_exported(system):
    board = system.one(watched.DASHBOARD)
    outputs = system.one("seaport:index:Monitoring")["outputs"]
    assert board["inputs"]["dashboardName"] == outputs["dashboard_name"] == "seaport-test-monitoring"
    assert outputs["dashboard_url"] == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#dashboards/dashboard/seaport-test-monitoring"
    )


def test_laid_out_like_the_system(system):
    body = watched.dashboard_body(system)
    headings = [w["properties"]["markdown"] for w in body["widgets"] if w["type"] == "text"]
    assert [h.split(":")[0].split("\n")[0] for h in headings] == [
        "# seaport test",
        "## portal",
        "## Messaging",
        "## Services",
        "## Consul",
        "## Capacity",
    ]
    ys = [w["y"] for w in body["widgets"]]
    assert ys == sorted(ys)  # top to bottom, in that order
    (status,) = widgets(system, "alarm")
    alarms = system.one("seaport:index:Monitoring")["outputs"]["alarm_arns"]
    assert sorted(status["properties"]["alarms"]) == sorted(alarms.values())


def test_the_portal_row_draws_the_scaling_thresholds_on_its_tasks(system):
    tasks = titled(system, "Tasks, and CPU")
    assert horizontal(tasks) == {
        "min tasks": (PORTAL_SCALING["min_tasks"], "left"),
        "max tasks": (PORTAL_SCALING["max_tasks"], "left"),
        "scale out": (75, "right"),
        "scale in": (25, "right"),
    }
    assert horizontal(titled(system, "5xx"))["alarm"] == (5, "left")
    assert horizontal(titled(system, "Response time"))["p99 alarm"] == (1.5, "left")
    for title in ("Requests", "5xx", "Response time", "Targets"):
        assert titled(system, title)["period"] == 60


def test_target_tracking_draws_its_cpu_target(any_system):
    monitoring = any_system.one("seaport:index:Monitoring")
    tasks = titled(any_system, "Tasks, and CPU")
    cpu = {label for label, (_, axis) in horizontal(tasks).items() if axis == "right"}
    assert cpu in ({"scale out", "scale in"}, {"CPU target"}), monitoring["name"]


def dimensions_of(line: list) -> dict:
    """The dimensions of one metric line, ``[namespace, name, key, value, ..., {options}]``."""
    parts = [part for part in line if not isinstance(part, dict)]
    return dict(zip(parts[2::2], parts[3::2], strict=True))


def test_the_messaging_row(system):
    cluster = watched.cluster_name(system)
    lines = titled(system, "Messages per minute")["metrics"]
    rates = {(m[1], dimensions_of(m)[telemetry.SERVICE]) for m in lines}
    assert rates == {(name, app) for app, names in telemetry.APP_METRICS.items() for name in names}
    assert {tuple(dimensions_of(m).items()) for m in lines} == {
        ((telemetry.CLUSTER, cluster), (telemetry.SERVICE, app), (telemetry.QUEUE, QUEUE))
        for app in telemetry.APP_METRICS
    }  # this stack's cluster: another stack's queue of the same name is not graphed here
    assert horizontal(titled(system, "Backlog"))["backlog alarm"] == (1000, "left")
    memory = horizontal(titled(system, "Broker memory"))
    assert memory == {"alarm": (40, "left"), "watermark: publishers blocked": (50.0, "left")}
    per_task = titled(system, "receive: ready messages per task")
    assert horizontal(per_task)["target"] == (RECEIVE_SCALING["target_backlog_per_task"], "left")
    (expression,) = [m[0]["expression"] for m in per_task["metrics"] if isinstance(m[0], dict)]
    assert expression == "depth / tasks"  # what the scaling policy tracks


def test_the_scaling_policy_tracks_what_the_dashboard_graphs(system):
    graphed = {(ns, name, tuple(sorted(d.items()))) for ns, name, d in dashboard.metrics_of(
        system.one(watched.DASHBOARD)["inputs"]["dashboardBody"])}  # fmt: skip
    tracked = {(ns, name, tuple(sorted(d.items()))) for _, (ns, name, d) in watched.scaling_metrics(system)}
    assert tracked and tracked <= graphed


def test_amazon_mq_memory_comes_from_its_broker_metrics():
    plan = system_plan("amazonmq", False)
    memory = titled(plan, "Broker memory")
    namespaces = {m[0] for m in memory["metrics"] if not isinstance(m[0], dict)}
    assert namespaces == {"AWS/AmazonMQ"}
    assert horizontal(memory) == {"alarm": (80, "left")}


def test_metrics_of_resolves_the_dot_shorthand():
    text = json.dumps(
        {
            "widgets": [
                {
                    "type": "metric",
                    "properties": {
                        "region": "r",
                        "metrics": [
                            ["AWS/EC2", "DiskReadBytes", "InstanceId", "i-123", {"id": "m1"}],
                            [".", ".", ".", "i-abc", {"id": "m2"}],
                            [{"expression": "SUM(METRICS())", "id": "e3"}],
                        ],
                    },
                }
            ]
        }
    )
    assert dashboard.metrics_of(text) == [
        ("AWS/EC2", "DiskReadBytes", {"InstanceId": "i-123"}),
        ("AWS/EC2", "DiskReadBytes", {"InstanceId": "i-abc"}),
    ]


def test_queue_dimension_is_the_queue(system):
    queues = {d["Queue"] for ns, _, d in dashboard.metrics_of(system.one(watched.DASHBOARD)["inputs"]["dashboardBody"])
              if ns == telemetry.NAMESPACE}  # fmt: skip
    assert queues == {QUEUE}


def test_every_messaging_metric_graphed_is_this_clusters(any_system):
    body = any_system.one(watched.DASHBOARD)["inputs"]["dashboardBody"]
    found = [(name, d) for ns, name, d in dashboard.metrics_of(body) if ns == telemetry.NAMESPACE]
    assert found
    for name, dimensions in found:
        expected = telemetry.APP_DIMENSIONS if name not in telemetry.QUEUE_METRICS else telemetry.QUEUE_DIMENSIONS
        assert tuple(dimensions) == expected, name
        assert dimensions[telemetry.CLUSTER] == watched.cluster_name(any_system), name
