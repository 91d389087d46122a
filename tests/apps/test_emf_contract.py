"""What the alarms, the dashboard and receive's scaling of the real stacks read is what send and receive write.

The dev and prod stacks are planned offline with the test's queue (``seaport:queueName``); apps.send and
apps.receive then run against the real broker with the environment those plans give their containers
(METRICS_CLUSTER: the stack's ECS cluster name) and a short METRICS_INTERVAL_SECONDS. Their EMF lines are parsed
and every ``Seaport/Messaging`` metric (namespace, name, dimension set and values) that the stack's Monitoring
alarms and dashboard and backlog-mode ServiceAutoscaling read must be one they declared.
"""

from __future__ import annotations

import pytest

from apps.common.contract import telemetry
from seaport.tools.testing import run_program, stack_config
from tests.apps.emf import emf_problems, emf_records, run_with_a_dead_letter
from tests.unit import watched
from tests.unit.monitored import MAIN, REPO

pytestmark = pytest.mark.rabbitmq


@pytest.fixture(params=["dev", "prod"])
def plan(request, messaging):
    """The real stack, its send and receive on this test's queue."""
    config = {**stack_config(REPO, request.param), "seaport:queueName": messaging.queue}
    return run_program(MAIN, stack=request.param, config=config)


@pytest.fixture
def emitted(messaging, plan, tmp_path):
    """EMF lines of receive and send (one a poison message, dead-lettered) against the real broker, each app with
    the METRICS_CLUSTER its container has in the plan."""
    clusters = watched.apps_clusters(plan)
    assert set(clusters) == {"send", "receive"}

    def env(app: str) -> dict[str, str]:
        return messaging.env(METRICS_INTERVAL_SECONDS="0.3", METRICS_CLUSTER=clusters[app])

    record = tmp_path / "received.txt"
    sender, poison, receiver = run_with_a_dead_letter(messaging, record, 200, env)
    records = emf_records(sender) + emf_records(poison) + emf_records(receiver)
    assert records and all(emf_problems(r) == [] for r in records)
    return watched.emf_emitted(records)


def test_every_app_metric_the_alarms_dashboard_and_scaling_read_is_one_the_apps_write(messaging, plan, emitted):
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
    # What the alarms and the scaling policy need in particular (not just what the dashboard graphs): this
    # stack's queue, told apart from another stack's of the same name by the cluster.
    cluster, queue = watched.cluster_name(plan), messaging.queue
    needed = {
        (metric[1], tuple(sorted(metric[2].items()))) for source, _, metric in read if source != "dashboard_metrics"
    }
    per_queue = tuple(sorted(telemetry.queue_dimensions(cluster, queue).items()))
    assert needed == {
        (telemetry.QUEUE_DEPTH, per_queue),
        (telemetry.DEAD_LETTER_DEPTH, per_queue),
        (telemetry.CONSUMERS, per_queue),
    }
    # And the comparison does catch a metric no app writes.
    queue_metric = telemetry.queue_dimensions(cluster, queue)
    assert watched.problems((telemetry.NAMESPACE, "QueueLength", queue_metric), None, emitted)
    assert watched.problems(
        (telemetry.NAMESPACE, telemetry.QUEUE_DEPTH, {**queue_metric, "Queue": "other"}), None, emitted
    )
    app_dimensions = telemetry.app_dimensions(cluster, telemetry.SEND, queue)
    assert watched.problems((telemetry.NAMESPACE, telemetry.QUEUE_DEPTH, app_dimensions), None, emitted)
    assert watched.problems((telemetry.NAMESPACE, telemetry.PROCESSED, app_dimensions), None, emitted)
    # another stack's cluster, or no cluster at all (the dimensions before Cluster)
    other = telemetry.queue_dimensions(f"{cluster}-other", queue)
    assert watched.problems((telemetry.NAMESPACE, telemetry.QUEUE_DEPTH, other), None, emitted)
    assert watched.problems((telemetry.NAMESPACE, telemetry.QUEUE_DEPTH, {telemetry.QUEUE: queue}), None, emitted)
