"""Rules the components apply and the policy pack enforces: written once, imported by both.

The components refuse what breaks a rule before creating anything; the policy
pack (``policy/``) checks any stack, seaport's or not, against the same rule.
"""

from __future__ import annotations

import re

# Addresses that mean "the whole internet" in a security group rule.
WORLD_CIDRS = ("0.0.0.0/0", "::/0")

# Bridge mode maps each container port to a host port the kernel picks from this range.
EPHEMERAL_PORTS = (32768, 65535)

# An environment variable name that says it holds a secret. Whole words between underscores,
# so RABBITMQ_DEFAULT_PASS and DB_PASSWD count and KEYCLOAK_URL does not.
SECRET_NAME = re.compile(
    r"(^|_)(PASSWORD|PASSWD|PASS|PWD|SECRET|SECRETS|TOKEN|KEY|APIKEY|CREDENTIAL|CREDENTIALS|COOKIE|PRIVATE)($|_)",
    re.IGNORECASE,
)


def looks_secret(variable: str) -> bool:
    """Whether an environment variable's name says it holds a secret (pass it as an ECS secret instead)."""
    return bool(SECRET_NAME.search(variable))


def plaintext_secrets(environment: dict[str, str], secret_values: set[str]) -> list[str]:
    """Variables of ``environment`` whose name looks secret or whose value is one of ``secret_values``.

    ``secret_values`` are the values of generated credentials (passwords, tokens, keys, cookies):
    a variable that carries one leaks it whatever its name.
    """
    return sorted(k for k, v in environment.items() if looks_secret(k) or (v and v in secret_values))


# -- Consul ACL tokens -------------------------------------------------------------------------

# Resources an app's token must never write: the key/value store, ACLs, cluster operations, sessions, ...
CONSUL_NEVER_WRITTEN_BY_APPS = (
    "key", "key_prefix", "acl", "operator", "keyring", "agent", "agent_prefix", "event", "event_prefix",
    "query", "query_prefix", "session", "session_prefix", "mesh", "peering", "intention", "intention_prefix",
)  # fmt: skip


def consul_app_token_problems(rules: dict) -> list[str]:
    """What an app token's ACL rules (Consul's JSON form) grant beyond looking up and registering services."""
    problems = []
    for resource, grants in rules.items():
        if isinstance(grants, str):  # e.g. {"acl": "write", "operator": "read"}
            grants = {"": {"policy": grants}}
        for name, grant in (grants or {}).items():
            policy = grant.get("policy") if isinstance(grant, dict) else grant
            if resource in CONSUL_NEVER_WRITTEN_BY_APPS and policy in ("write", "list"):
                problems.append(f"{resource} {name!r} {policy}")
            if resource.startswith("node") and policy == "write":
                problems.append(f"{resource} {name!r} write (only agents register nodes)")
    return problems


# -- how fast scaling reacts -------------------------------------------------------------------

# Most seconds of sustained load before an alarm that scales out fires.
MAX_SCALE_OUT_ALARM_SECONDS = 300
# Target tracking: the alarms AWS creates need 3 one-minute datapoints to scale out, 15 to scale in.
TARGET_TRACKING_OUT_DATAPOINTS = 3
TARGET_TRACKING_IN_DATAPOINTS = 15
# What an alarm-based estimate leaves out, in seconds (used for the end-to-end estimate):
ECS_METRIC_DELAY_SECONDS = 60  # CPU and custom metrics reach CloudWatch about a minute late
TASK_START_SECONDS = 60  # image pull from a warm cache, container start, first health checks
INSTANCE_START_SECONDS = 180  # a new instance when the cluster is full: boot, ECS agent, warm-up


def alarm_seconds(period: int, evaluation_periods: int, datapoints_to_alarm: int | None = None) -> int:
    """Seconds of breaching data an alarm needs before it fires (its M of N datapoints)."""
    return int(period) * int(datapoints_to_alarm or evaluation_periods)


def end_to_end_seconds(alarm_and_cooldown: int, *, new_instance: bool = False) -> int:
    """An estimate of load-to-serving time: metric delay + alarm (and cooldown) + task start (+ an instance)."""
    extra = INSTANCE_START_SECONDS if new_instance else 0
    return ECS_METRIC_DELAY_SECONDS + alarm_and_cooldown + TASK_START_SECONDS + extra


# -- alarms that page ---------------------------------------------------------------------------

# send and receive write one EMF record a minute (METRICS_INTERVAL_SECONDS): a backlog shows in CloudWatch up to
# a record interval after it builds, on top of the usual metric delay.
EMF_RECORD_INTERVAL_SECONDS = 60
# Where an alarm's description sends whoever is paged: the README's "Operating" section.
RUNBOOK = "README.md#"
SNS_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+")


def watched_metrics(alarm: dict) -> list[tuple[str, str, dict[str, str]]]:
    """``(namespace, metric name, dimensions)`` of every metric a CloudWatch alarm reads.

    ``alarm`` holds the engine's camelCase properties: a single metric (``namespace``, ``metricName``,
    ``dimensions``) or metric math (``metricQueries``, each query's ``metric``)."""
    found = []
    if alarm.get("metricName"):
        found.append((alarm.get("namespace") or "", alarm["metricName"], dict(alarm.get("dimensions") or {})))
    for query in alarm.get("metricQueries") or []:
        metric = query.get("metric") or {}
        if metric.get("metricName"):
            found.append((metric.get("namespace") or "", metric["metricName"], dict(metric.get("dimensions") or {})))
    return found


def notifies(alarm: dict) -> bool:
    """Whether an alarm sends its ALARM state to an SNS topic (someone gets paged)."""
    return any(SNS_ARN.match(str(action)) for action in alarm.get("alarmActions") or [])
