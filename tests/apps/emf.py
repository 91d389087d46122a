"""A checker for CloudWatch Embedded Metric Format records, written from the specification.

https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
(root node, metadata object, MetricDirective, DimensionSet, MetricDefinition),
plus CloudWatch's rules for namespaces and units (PutMetricData / MetricDatum).
"""

from __future__ import annotations

import re
import time

from apps.common.contract import telemetry
from tests.apps.helpers import expected_ids, log_records, read_ids, wait_until

UNITS = {
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
}
NAMESPACE = re.compile(r"[A-Za-z0-9.\-_/#: ]{1,255}")
MAX_DIMENSIONS_PER_SET = 30
MAX_METRICS_PER_DIRECTIVE = 100
MAX_VALUES_PER_METRIC = 100


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def emf_problems(record: dict, max_age_s: float = 3600.0) -> list[str]:
    """What makes ``record`` (one parsed log line) not a valid EMF document; [] when it is valid."""
    problems: list[str] = []
    meta = record.get("_aws")
    if not isinstance(meta, dict):
        return ["the root has no _aws object"]
    extra = set(meta) - {"Timestamp", "CloudWatchMetrics"}
    if extra:
        problems.append(f"_aws has members the specification does not define: {sorted(extra)}")
    stamp = meta.get("Timestamp")
    if not is_number(stamp):
        problems.append("_aws.Timestamp is not a number")
    elif abs(stamp / 1000 - time.time()) > max_age_s:
        problems.append(f"_aws.Timestamp {stamp} is not milliseconds since the epoch around now")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*problems, "_aws.CloudWatchMetrics is not a non-empty array"]
    for index, directive in enumerate(directives):
        problems += [f"directive {index}: {p}" for p in directive_problems(record, directive)]
    return problems


def directive_problems(record: dict, directive) -> list[str]:
    if not isinstance(directive, dict):
        return ["not an object"]
    problems = []
    if set(directive) - {"Namespace", "Dimensions", "Metrics"}:
        problems.append(f"unknown members {sorted(set(directive) - {'Namespace', 'Dimensions', 'Metrics'})}")
    namespace = directive.get("Namespace")
    if not isinstance(namespace, str) or not NAMESPACE.fullmatch(namespace) or not namespace.strip():
        problems.append(f"Namespace {namespace!r} is not 1-255 of letters, digits and . - _ / # : space")
    elif namespace.startswith("AWS/"):
        problems.append("Namespace must not start with AWS/")
    dimension_sets = directive.get("Dimensions")
    if not isinstance(dimension_sets, list):
        problems.append("Dimensions is not an array of dimension sets")
        dimension_sets = []
    for dimension_set in dimension_sets:
        if not isinstance(dimension_set, list) or len(dimension_set) > MAX_DIMENSIONS_PER_SET:
            problems.append(f"dimension set {dimension_set!r} is not an array of at most 30 keys")
            continue
        for key in dimension_set:
            value = record.get(key) if isinstance(key, str) else None
            if not isinstance(value, str) or not 1 <= len(value) <= 1024:
                problems.append(f"dimension {key!r} has no string target member (1-1024 characters)")
    metrics = directive.get("Metrics")
    if not isinstance(metrics, list) or not 1 <= len(metrics) <= MAX_METRICS_PER_DIRECTIVE:
        return [*problems, "Metrics is not an array of 1 to 100 metric definitions"]
    names = [metric.get("Name") for metric in metrics if isinstance(metric, dict)]
    if len(names) != len(set(names)):
        problems.append(f"metric names repeat: {names}")
    for metric in metrics:
        problems += metric_problems(record, metric)
    return problems


def metric_problems(record: dict, metric) -> list[str]:
    if not isinstance(metric, dict):
        return [f"metric definition {metric!r} is not an object"]
    problems = []
    if set(metric) - {"Name", "Unit", "StorageResolution"}:
        problems.append(f"metric {metric!r} has unknown members")
    name = metric.get("Name")
    if not isinstance(name, str) or not 1 <= len(name) <= 1024:
        return [*problems, f"metric name {name!r} is not a string of 1-1024 characters"]
    if "Unit" in metric and metric["Unit"] not in UNITS:
        problems.append(f"metric {name}: unit {metric['Unit']!r} is not a CloudWatch unit")
    if metric.get("StorageResolution", 60) not in (1, 60):
        problems.append(f"metric {name}: StorageResolution must be 1 or 60")
    value = record.get(name)
    values = value if isinstance(value, list) else [value]
    if not values or len(values) > MAX_VALUES_PER_METRIC or not all(is_number(v) for v in values):
        problems.append(f"metric {name}: target member {value!r} is not a number or an array of up to 100")
    return problems


def emf_records(app) -> list[dict]:
    """The EMF records among an app process's JSON log lines."""
    return [record for record in log_records(app.output()) if "_aws" in record]


def run_with_a_dead_letter(messaging, record, count: int, env) -> tuple:
    """``count`` messages and one poison message (dead-lettered after two deliveries) through the real broker:
    receive runs until every id arrived and one of its records counted the dead letter, then stops. ``env(app)``
    gives each app's environment; it is called after the delivery limit is set (``messaging.env`` passes it on).
    Returns the (sender, poison sender, receiver) processes, all exited."""
    messaging.max_deliveries = 2
    messaging.load_definitions()  # dead-lettering as deployed: <queue>.dead exists, DeadLetterDepth is measured
    send_env, receive_env = env("send"), env("receive")
    receiver = messaging.receive("--record", str(record), env=receive_env)
    messaging.wait_logged(receiver, "consuming")
    sender = messaging.send("--count", str(count), "--rate", "1000", "--run-id", "emf", env=send_env)
    poison = messaging.send("--count", "1", "--run-id", "bad", "--poison", env=send_env)
    assert messaging.wait_exit(sender, 30) == 0, sender.output()
    assert messaging.wait_exit(poison, 30) == 0, poison.output()
    wait_until(lambda: set(read_ids(record)) >= expected_ids("emf", count), 30, "every message received")
    dead_letter_seen = lambda: any(r.get(telemetry.DEAD_LETTER_DEPTH) == 1 for r in emf_records(receiver))  # noqa: E731
    wait_until(dead_letter_seen, 30, "a receive record with the dead letter counted")
    assert receiver.stop() == 0
    return sender, poison, receiver
