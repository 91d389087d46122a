"""The EMF records apps.send and apps.receive write while they work against a real broker, under the Cluster
dimension METRICS_CLUSTER gives them."""

from __future__ import annotations

import pytest

from apps.common.contract import telemetry
from tests.apps.emf import emf_problems, emf_records, run_with_a_dead_letter
from tests.apps.helpers import log_records, read_ids
from tests.apps.test_errors import assert_one_error_line, run_app

pytestmark = pytest.mark.rabbitmq
CLUSTER = "seaport-test-5f3a9c1"  # what seaport gives the apps: the ECS cluster's name


def check_against_the_contract(record: dict, service: str, queue: str, cluster: str = CLUSTER) -> None:
    """Valid EMF, and only the namespace, dimensions and metric names the alarms are built from."""
    assert emf_problems(record) == [], record
    assert (record[telemetry.CLUSTER], record[telemetry.SERVICE], record[telemetry.QUEUE]) == (cluster, service, queue)
    allowed = {
        tuple(telemetry.APP_DIMENSIONS): set(telemetry.APP_METRICS[service]),
        tuple(telemetry.QUEUE_DIMENSIONS): set(telemetry.QUEUE_METRICS),
    }
    for directive in record["_aws"]["CloudWatchMetrics"]:
        assert directive["Namespace"] == telemetry.NAMESPACE
        (dimensions,) = directive["Dimensions"]
        names = {metric["Name"] for metric in directive["Metrics"]}
        assert names <= allowed[tuple(dimensions)], (dimensions, names)
        assert {metric["Unit"] for metric in directive["Metrics"]} == {telemetry.UNIT}
    assert set(telemetry.APP_METRICS[service]) <= set(record)  # the counts are in every record


def total(records: list[dict], metric: str) -> int:
    return sum(record.get(metric, 0) for record in records)


def test_send_and_receive_write_emf_metrics_that_add_up(messaging, tmp_path):
    record = tmp_path / "received.txt"
    env = lambda _app: messaging.env(METRICS_INTERVAL_SECONDS="0.3", METRICS_CLUSTER=CLUSTER)  # noqa: E731
    sender, _poison, receiver = run_with_a_dead_letter(messaging, record, 600, env)

    queue = messaging.queue
    sent, received = emf_records(sender), emf_records(receiver)
    assert len(sent) >= 2 and len(received) >= 2
    for record_of_send in sent:
        check_against_the_contract(record_of_send, telemetry.SEND, queue)
    for record_of_receive in received:
        check_against_the_contract(record_of_receive, telemetry.RECEIVE, queue)

    # Each record carries what happened since the previous one (and the last one is written
    # at exit), so CloudWatch's Sum over the records is the app's total.
    assert total(sent, telemetry.PUBLISHED) == total(sent, telemetry.CONFIRMED) == 600
    assert total(received, telemetry.PROCESSED) == len(read_ids(record)) >= 600
    assert total(received, telemetry.FAILED) == 2  # the poison message, delivered twice
    assert total(received, telemetry.DEAD_LETTERED) == 1
    measured = [r for r in received if telemetry.CONSUMERS in r]
    assert measured and all(r[telemetry.CONSUMERS] >= 1 for r in measured)  # receive itself consumes
    assert all(r[telemetry.QUEUE_DEPTH] >= 0 for r in measured)


def test_without_metrics_cluster_the_records_are_local(messaging):
    sender = messaging.send("--count", "5", "--run-id", "local", env=messaging.env(METRICS_INTERVAL_SECONDS="0.3"))
    assert messaging.wait_exit(sender, 30) == 0, sender.output()
    records = emf_records(sender)
    assert records
    for record in records:
        check_against_the_contract(record, telemetry.SEND, messaging.queue, cluster=telemetry.DEFAULT_CLUSTER)
    assert telemetry.DEFAULT_CLUSTER == "local"


@pytest.mark.parametrize("app", ["send", "receive"])
@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("c" * 256, "256 characters long: an ECS cluster name has at most 255"),
        ("arn:aws:ecs:us-east-1:123456789012:cluster/seaport-1234567", "is no ECS cluster name"),
    ],
    ids=["empty", "blank", "too-long", "an-arn"],
)
def test_a_bad_metrics_cluster_stops_the_app_at_start_up(app, value, phrase):
    # No broker is needed: the setting is checked before anything starts (had it not been, the closed port would
    # end the run with exit 3 after a second of retrying).
    env = {
        "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:9/%2F",
        "RABBITMQ_RETRY_SECONDS": "1",
        "METRICS_CLUSTER": value,
    }
    result = run_app(app, "--count" if app == "send" else "--idle-exit", "1", env=env)
    assert_one_error_line(result, 2, "METRICS_CLUSTER", phrase)
    messages = [record["message"] for record in log_records(result.stdout)]
    assert "starting" not in messages and "broker unavailable, retrying" not in messages
