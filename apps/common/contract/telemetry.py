"""The metrics apps.send and apps.receive publish, named once for the apps and the alarms.

The apps write CloudWatch Embedded Metric Format (EMF) records into their JSON
logs; the awslogs driver ships them and CloudWatch Logs extracts the metrics
(no agent, no SDK, no extra dependency). The monitoring components build their
alarms, their dashboard and receive's backlog scaling from the same names and
dimensions, so the apps and the infrastructure cannot drift apart.

Every metric is in ``NAMESPACE`` with unit Count, and every one carries the
dimension ``Cluster``: the name of the ECS cluster the app runs on. Two stacks
in one account and region (dev and prod, both with the queue ``messages``)
thus write different metrics, and each stack's alarms and scaling read its own
(ECS cluster names are unique in an account and region; AWS's own ECS metrics
tell clusters apart the same way, by ``ClusterName``).

- per app, dimensions ``Cluster``, ``Service`` (``send`` or ``receive``) and
  ``Queue`` (the work queue's name): ``Published``, ``Confirmed`` (send),
  ``Processed``, ``Failed`` (failed deliveries, retries included),
  ``DeadLettered`` (receive). Each value is what happened since the app's
  previous record, so the CloudWatch statistic to use is Sum;
- per queue, dimensions ``Cluster`` and ``Queue``, measured with passive
  declares by whichever app runs (both do, so the backlog is seen even while
  no receiver is up): ``QueueDepth`` (ready messages), ``DeadLetterDepth``
  (messages in ``<queue>.dead``), ``Consumers``. Use Maximum (or Minimum for
  Consumers).

An app writes one record every METRICS_INTERVAL_SECONDS (default 60) and one
when it exits. It reads the ``Cluster`` value from ``CLUSTER_VARIABLE``
(``METRICS_CLUSTER``), which seaport's ``RabbitMessaging`` sets to the ECS
cluster's name; unset (local runs, tests) it is ``DEFAULT_CLUSTER``
(``local``). A value that is set must be a name as ECS allows it (1-255
letters, digits, ``_`` or ``-``): anything else stops the app at start-up.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

NAMESPACE = "Seaport/Messaging"
UNIT = "Count"

# Dimension names, and the values of SERVICE.
CLUSTER = "Cluster"
SERVICE = "Service"
QUEUE = "Queue"
SEND = "send"
RECEIVE = "receive"

# Metric names.
PUBLISHED = "Published"
CONFIRMED = "Confirmed"
PROCESSED = "Processed"
FAILED = "Failed"
DEAD_LETTERED = "DeadLettered"
QUEUE_DEPTH = "QueueDepth"
DEAD_LETTER_DEPTH = "DeadLetterDepth"
CONSUMERS = "Consumers"

APP_METRICS = {SEND: (PUBLISHED, CONFIRMED), RECEIVE: (PROCESSED, FAILED, DEAD_LETTERED)}
QUEUE_METRICS = (QUEUE_DEPTH, DEAD_LETTER_DEPTH, CONSUMERS)
APP_DIMENSIONS = (CLUSTER, SERVICE, QUEUE)  # the dimension set of APP_METRICS
QUEUE_DIMENSIONS = (CLUSTER, QUEUE)  # the dimension set of QUEUE_METRICS

# Where the apps read the CLUSTER value, its value when unset, and what a value may be (an ECS cluster name).
CLUSTER_VARIABLE = "METRICS_CLUSTER"
DEFAULT_CLUSTER = "local"
MAX_CLUSTER_LENGTH = 255
_CLUSTER_NAME = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_CLUSTER_LENGTH}}}")


def cluster_problem(value: object) -> str | None:
    """Why ``value`` cannot be the ``Cluster`` dimension (None when it can): an ECS cluster name is 1-255
    letters, digits, ``_`` or ``-``."""
    if not isinstance(value, str) or not value:
        return "is empty: the ECS cluster's name is expected"
    if len(value) > MAX_CLUSTER_LENGTH:
        return f"is {len(value)} characters long: an ECS cluster name has at most {MAX_CLUSTER_LENGTH}"
    if not _CLUSTER_NAME.fullmatch(value):
        return "is no ECS cluster name (letters, digits, _ and - only)"
    return None


def app_dimensions(cluster: Any, service: Any, queue: Any) -> dict[str, Any]:
    """The dimensions of an app metric (APP_DIMENSIONS) with their values, in that order."""
    return dict(zip(APP_DIMENSIONS, (cluster, service, queue), strict=True))


def queue_dimensions(cluster: Any, queue: Any) -> dict[str, Any]:
    """The dimensions of a queue metric (QUEUE_DIMENSIONS) with their values, in that order."""
    return dict(zip(QUEUE_DIMENSIONS, (cluster, queue), strict=True))


def emf_record(
    service: str,
    queue: str,
    values: Mapping[str, float | None],
    timestamp_ms: int | None = None,
    *,
    cluster: str,
) -> dict:
    """One EMF record: ``{"_aws": {...}, "Cluster": cluster, "Service": service, "Queue": queue, <metric>: <value>,
    ...}``.

    ``values`` maps metric names of ``service`` (APP_METRICS) and QUEUE_METRICS
    to numbers; a value of None (not measured, e.g. while disconnected) is left
    out. ``cluster`` is the ECS cluster's name (``METRICS_CLUSTER``). The record
    is a plain dict to merge into a JSON log line: other members of the line are
    ignored by CloudWatch. ``timestamp_ms``: milliseconds since the epoch
    (default now). Raises ValueError for an unknown service or metric, or a
    cluster that is no ECS cluster name.
    """
    if service not in APP_METRICS:
        raise ValueError(f"service {service!r}: use one of {', '.join(APP_METRICS)}")
    unknown = set(values) - set(APP_METRICS[service]) - set(QUEUE_METRICS)
    if unknown:
        raise ValueError(f"not metrics of {service}: {', '.join(sorted(unknown))}")
    problem = cluster_problem(cluster)
    if problem:
        raise ValueError(f"cluster {cluster!r} {problem}")
    measured = {name: value for name, value in values.items() if value is not None}
    directives = []
    for names, dimensions in ((APP_METRICS[service], APP_DIMENSIONS), (QUEUE_METRICS, QUEUE_DIMENSIONS)):
        present = [name for name in names if name in measured]
        if present:
            directives.append(
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": UNIT} for name in present],
                }
            )
    record: dict = {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms),
            "CloudWatchMetrics": directives,
        },
        **app_dimensions(cluster, service, queue),
    }
    record.update(measured)
    return record
