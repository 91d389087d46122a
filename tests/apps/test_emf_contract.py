"""What the alarms, the dashboard and receive's scaling read is what send and receive really write.

apps.send and apps.receive run against the real broker with a short METRICS_INTERVAL_SECONDS; their EMF lines
are parsed and every ``Seaport/Messaging`` metric (namespace, name, dimension set and values) that Monitoring's
alarms and dashboard and backlog-mode ServiceAutoscaling read for that queue must be one they declared.
"""

from __future__ import annotations

import pytest

from apps.common.contract import telemetry
from seaport import ServiceAutoscaling
from seaport.monitoring import Monitoring
from seaport.tools.testing import run
from tests.apps.emf import emf_problems
from tests.apps.helpers import expected_ids, log_records, read_ids, wait_until
from tests.unit import watched
from tests.unit.references import CLUSTER

pytestmark = pytest.mark.rabbitmq


def emf_lines(app) -> list[dict]:
    return [record for record in log_records(app.output()) if "_aws" in record]


def monitored(queue: str):
    """Monitoring and receive's backlog scaling, as a stack would give them, for ``queue``."""

    def program():
        ServiceAutoscaling(
            "receive",
            {"cluster": CLUSTER, "service_name": "receive-1", "scaling_mode": "backlog", "queue_name": queue},
        )
        Monitoring(
            "monitoring",
            {
                "cluster": CLUSTER,
                "services": [{"name": "receive", "service_name": "receive-1"}],
                "messaging": {
                    "queue_name": queue,
                    "broker_service_name": "broker-1",
                    "receive_service_name": "receive-1",
                    "receive_autoscaling": {"scaling_mode": "backlog"},
                },
            },
        )

    return run(program)


@pytest.fixture
def emitted(messaging, tmp_path):
    """EMF lines of receive and send (one a poison message, dead-lettered) against the real broker."""
    messaging.max_deliveries = 2
    messaging.load_definitions()  # dead-lettering as deployed: <queue>.dead exists, DeadLetterDepth is measured
    env = messaging.env(METRICS_INTERVAL_SECONDS="0.3")
    record = tmp_path / "received.txt"
    receiver = messaging.receive("--record", str(record), env=env)
    messaging.wait_logged(receiver, "consuming")
    sender = messaging.send("--count", "200", "--rate", "1000", "--run-id", "emf", env=env)
    poison = messaging.send("--count", "1", "--run-id", "bad", "--poison", env=env)
    assert messaging.wait_exit(sender, 30) == 0, sender.output()
    assert messaging.wait_exit(poison, 30) == 0, poison.output()
    wait_until(lambda: set(read_ids(record)) >= expected_ids("emf", 200), 30, "every message received")
    dead_letter_seen = lambda: any(r.get(telemetry.DEAD_LETTER_DEPTH) == 1 for r in emf_lines(receiver))  # noqa: E731
    wait_until(dead_letter_seen, 30, "a receive record with the dead letter counted")
    assert receiver.stop() == 0
    records = emf_lines(sender) + emf_lines(poison) + emf_lines(receiver)
    assert records and all(emf_problems(r) == [] for r in records)
    return watched.emf_emitted(records)


def test_every_app_metric_the_alarms_dashboard_and_scaling_read_is_one_the_apps_write(messaging, emitted):
    plan = monitored(messaging.queue)
    read = [
        (source.__name__, name, metric)
        for source in (watched.alarm_metrics, watched.dashboard_metrics, watched.scaling_metrics)
        for name, metric in source(plan)
        if metric[0] == telemetry.NAMESPACE
    ]
    # The alarms, the dashboard and the scaling policy each read the apps' metrics...
    assert {source for source, _, _ in read} == {"alarm_metrics", "dashboard_metrics", "scaling_metrics"}
    # ... with the very namespace, names, dimension sets and values the apps' EMF lines declare.
    problems = [(source, name, p) for source, name, metric in read for p in watched.problems(metric, plan, emitted)]
    assert problems == []
    # What the alarms and the scaling policy need in particular (not just what the dashboard graphs).
    needed = {(metric[1], frozenset(metric[2])) for source, _, metric in read if source != "dashboard_metrics"}
    assert needed == {
        (telemetry.QUEUE_DEPTH, frozenset({telemetry.QUEUE})),
        (telemetry.DEAD_LETTER_DEPTH, frozenset({telemetry.QUEUE})),
        (telemetry.CONSUMERS, frozenset({telemetry.QUEUE})),
    }
    # And the comparison does catch a metric no app writes.
    queue = messaging.queue
    assert watched.problems((telemetry.NAMESPACE, "QueueLength", {telemetry.QUEUE: queue}), None, emitted)
    assert watched.problems((telemetry.NAMESPACE, telemetry.QUEUE_DEPTH, {telemetry.QUEUE: "other"}), None, emitted)
    app_dimensions = {telemetry.SERVICE: telemetry.SEND, telemetry.QUEUE: queue}
    assert watched.problems((telemetry.NAMESPACE, telemetry.QUEUE_DEPTH, app_dimensions), None, emitted)
    assert watched.problems((telemetry.NAMESPACE, telemetry.PROCESSED, app_dimensions), None, emitted)
