"""The metrics apps.send and apps.receive publish, named once for the apps and the alarms.

The apps write CloudWatch Embedded Metric Format (EMF) records into their JSON
logs; the awslogs driver ships them and CloudWatch Logs extracts the metrics
(no agent, no SDK, no extra dependency). The monitoring components build their
alarms and dashboard from the same names, so the two cannot drift.

Every metric is in ``NAMESPACE`` with unit Count:

- per app, dimensions ``Service`` (``send`` or ``receive``) and ``Queue`` (the
  work queue's name): ``Published``, ``Confirmed`` (send), ``Processed``,
  ``Failed`` (failed deliveries, retries included), ``DeadLettered`` (receive).
  Each value is what happened since the app's previous record, so the
  CloudWatch statistic to use is Sum;
- per queue, dimension ``Queue`` only, measured with passive declares by
  whichever app runs (both do, so the backlog is seen even while no receiver
  is up): ``QueueDepth`` (ready messages), ``DeadLetterDepth`` (messages in
  ``<queue>.dead``), ``Consumers``. Use Maximum (or Minimum for Consumers).

An app writes one record every METRICS_INTERVAL_SECONDS (default 60) and one
when it exits.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

NAMESPACE = "Seaport/Messaging"
UNIT = "Count"

# Dimension names, and the values of SERVICE.
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
APP_DIMENSIONS = (SERVICE, QUEUE)  # the dimension set of APP_METRICS
QUEUE_DIMENSIONS = (QUEUE,)  # the dimension set of QUEUE_METRICS


def emf_record(service: str, queue: str, values: Mapping[str, float | None], timestamp_ms: int | None = None) -> dict:
    """One EMF record: ``{"_aws": {...}, "Service": service, "Queue": queue, <metric>: <value>, ...}``.

    ``values`` maps metric names of ``service`` (APP_METRICS) and QUEUE_METRICS
    to numbers; a value of None (not measured, e.g. while disconnected) is left
    out. The record is a plain dict to merge into a JSON log line: other members
    of the line are ignored by CloudWatch. ``timestamp_ms``: milliseconds since
    the epoch (default now). Raises ValueError for an unknown service or metric.
    """
    if service not in APP_METRICS:
        raise ValueError(f"service {service!r}: use one of {', '.join(APP_METRICS)}")
    unknown = set(values) - set(APP_METRICS[service]) - set(QUEUE_METRICS)
    if unknown:
        raise ValueError(f"not metrics of {service}: {', '.join(sorted(unknown))}")
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
        SERVICE: service,
        QUEUE: queue,
    }
    record.update(measured)
    return record
