"""apps.common.contract (broker, telemetry, liveness): what the apps and the infrastructure share, without a broker.

The same files ship in the seaport library as ``seaport.contract``, so they must
import nothing but the standard library and each other.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import pytest

from apps.common.contract import broker, liveness, telemetry
from seaport.tools.sdk import gc_paused
from tests.apps.emf import emf_problems

CONTRACT_DIR = Path(broker.__file__).parent


@pytest.mark.parametrize("module", sorted(CONTRACT_DIR.glob("*.py")), ids=lambda path: path.name)
def test_contract_modules_import_only_the_standard_library(module):
    with gc_paused():  # CPython 3.11's ast.parse is not reentrant (seaport.tools.sdk)
        tree = ast.parse(module.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside the contract package
                continue
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top == "__future__" or top in sys.stdlib_module_names, f"{module.name} imports {name}"


def test_dead_letter_queue_naming():
    assert broker.dead_letter_queue("orders") == "orders.dead"
    assert broker.SERVICE_NAME == "rabbitmq"
    assert (broker.AMQP_PORT, broker.AMQPS_PORT) == (5672, 5671)


def test_queue_arguments_hold_only_what_can_never_change():
    assert broker.queue_arguments() == {"x-queue-type": "quorum"}
    assert broker.queue_arguments("classic") == {"x-queue-type": "classic"}
    with pytest.raises(ValueError, match="stream"):
        broker.queue_arguments("stream")


def test_policy_sets_limit_and_at_least_once_dead_lettering():
    policy = broker.queue_policy("orders", "quorum", delivery_limit=5, vhost="shop")
    assert set(policy) == {"name", "vhost", "pattern", "apply-to", "definition", "priority"}
    assert policy["vhost"] == "shop" and policy["apply-to"] == "queues" and policy["priority"] > 0
    assert policy["definition"] == {
        "delivery-limit": 5,
        "dead-letter-exchange": "",  # the default exchange routes by queue name...
        "dead-letter-routing-key": "orders.dead",  # ...to the dead-letter queue
        "dead-letter-strategy": "at-least-once",
        "overflow": "reject-publish",  # at-least-once is ignored without it
    }
    assert broker.queue_policy("orders", max_length=1000)["definition"]["max-length"] == 1000


def test_classic_queue_policy_has_only_keys_classic_queues_support():
    # A policy with a key the queue type lacks does not apply to the queue at all (3.10).
    assert broker.queue_policy("orders", "classic", delivery_limit=5)["definition"] == {
        "dead-letter-exchange": "",
        "dead-letter-routing-key": "orders.dead",
        "overflow": "reject-publish",
    }


@pytest.mark.parametrize("queue", ["orders", "a.b", "test-x_y-1a2b3c", "q+(1)"])
def test_policy_applies_to_the_work_queue_only(queue):
    pattern = re.compile(broker.queue_policy(queue)["pattern"])
    assert pattern.search(queue)
    # Never to its dead-letter queue (which would dead-letter into itself), nor to look-alikes.
    for other in (broker.dead_letter_queue(queue), "x" + queue, queue + "x", queue.replace(".", "x")):
        if other != queue:
            assert not pattern.search(other), other


def test_policy_always_sets_a_delivery_limit():
    # RabbitMQ 4.0+ gives a quorum queue without a limit 20 (3.x: none); -1 turns it off.
    # The broker must use the limit receive counts with, so it is always explicit and positive.
    assert broker.queue_policy()["definition"]["delivery-limit"] == broker.DEFAULT_DELIVERY_LIMIT
    for bad in (0, -1, 2.5, None):
        with pytest.raises(ValueError, match="delivery_limit"):
            broker.queue_policy("orders", delivery_limit=bad)
    with pytest.raises(ValueError, match="queue name"):
        broker.queue_policy("")


def test_definitions_document_declares_both_queues_as_the_apps_do():
    document = broker.definitions("orders", "quorum", delivery_limit=3, vhost="shop")
    assert json.loads(json.dumps(document)) == document  # plain JSON
    assert document["vhosts"] == [{"name": "shop"}]
    queues = {queue["name"]: queue for queue in document["queues"]}
    assert set(queues) == {"orders", "orders.dead"}
    for queue in queues.values():
        assert queue["durable"] and not queue["auto_delete"] and queue["vhost"] == "shop"
        assert queue["arguments"] == broker.queue_arguments("quorum")
    assert document["policies"] == [broker.queue_policy("orders", "quorum", 3, "shop")]


# -- telemetry -----------------------------------------------------------------------------


CLUSTER = "seaport-1234567"


def test_emf_record_is_valid_and_splits_app_and_queue_metrics():
    values = {telemetry.PROCESSED: 40, telemetry.FAILED: 2, telemetry.DEAD_LETTERED: 1, telemetry.QUEUE_DEPTH: 7}
    now = int(time.time() * 1000)
    record = telemetry.emf_record(telemetry.RECEIVE, "orders", values, timestamp_ms=now, cluster=CLUSTER)
    assert emf_problems(json.loads(json.dumps(record))) == []
    directives = record["_aws"]["CloudWatchMetrics"]
    assert {d["Namespace"] for d in directives} == {telemetry.NAMESPACE}
    by_dimensions = {tuple(d["Dimensions"][0]): [m["Name"] for m in d["Metrics"]] for d in directives}
    assert by_dimensions == {
        ("Cluster", "Service", "Queue"): [telemetry.PROCESSED, telemetry.FAILED, telemetry.DEAD_LETTERED],
        ("Cluster", "Queue"): [telemetry.QUEUE_DEPTH],  # the depths not measured are left out
    }
    assert (telemetry.APP_DIMENSIONS, telemetry.QUEUE_DIMENSIONS) == (
        ("Cluster", "Service", "Queue"),
        ("Cluster", "Queue"),
    )
    assert (record["Cluster"], record["Service"], record["Queue"], record["Processed"], record["QueueDepth"]) == (
        CLUSTER,
        "receive",
        "orders",
        40,
        7,
    )
    assert telemetry.app_dimensions(CLUSTER, "receive", "orders") == {
        "Cluster": CLUSTER, "Service": "receive", "Queue": "orders",
    }  # fmt: skip
    assert telemetry.queue_dimensions(CLUSTER, "orders") == {"Cluster": CLUSTER, "Queue": "orders"}


def test_emf_record_refuses_names_the_alarms_would_not_know():
    with pytest.raises(ValueError, match="Processed"):
        telemetry.emf_record(telemetry.SEND, "orders", {telemetry.PROCESSED: 1}, cluster=CLUSTER)  # a receive metric
    with pytest.raises(ValueError, match="service"):
        telemetry.emf_record("portal", "orders", {}, cluster=CLUSTER)
    with pytest.raises(TypeError, match="cluster"):
        telemetry.emf_record(telemetry.SEND, "orders", {})  # no stack's metrics without a cluster


@pytest.mark.parametrize(
    ("cluster", "problem"),
    [
        ("", "empty"),
        ("x" * 256, "256 characters long"),
        ("arn:aws:ecs:us-east-1:123456789012:cluster/seaport-1234567", "no ECS cluster name"),
        ("seaport 1234567", "no ECS cluster name"),
    ],
)
def test_a_cluster_dimension_is_an_ecs_cluster_name(cluster, problem):
    assert problem in telemetry.cluster_problem(cluster)
    with pytest.raises(ValueError, match=problem):
        telemetry.emf_record(telemetry.SEND, "orders", {telemetry.PUBLISHED: 1}, cluster=cluster)
    for name in (CLUSTER, telemetry.DEFAULT_CLUSTER, "A_b-9", "x" * 255):
        assert telemetry.cluster_problem(name) is None


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda r: r.pop("_aws"), "no _aws"),
        (lambda r: r["_aws"].update(Timestamp=time.time()), "milliseconds"),  # seconds, not ms
        (lambda r: r["_aws"]["CloudWatchMetrics"][0].update(Namespace="AWS/Logs"), "AWS/"),
        (lambda r: r.pop("Queue"), "dimension 'Queue'"),
        (lambda r: r.pop("Cluster"), "dimension 'Cluster'"),
        (lambda r: r.update(Published="12"), "not a number"),
        (lambda r: r["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(Unit="Messages"), "not a CloudWatch unit"),
        (lambda r: r["_aws"]["CloudWatchMetrics"][0].update(Metrics=[]), "1 to 100"),
    ],
)
def test_emf_checker_finds_what_breaks_the_specification(change, problem):
    values = {telemetry.PUBLISHED: 1, telemetry.CONFIRMED: 1}
    record = telemetry.emf_record(telemetry.SEND, "orders", values, cluster=CLUSTER)
    assert emf_problems(record) == []
    change(record)
    assert any(problem in found for found in emf_problems(record)), emf_problems(record)


# -- liveness ------------------------------------------------------------------------------


def test_liveness_health_check_fits_ecs_and_detects_a_stuck_loop_in_time():
    check = liveness.HEALTH_CHECK
    assert check["command"] == ["CMD", "python", "-m", "apps.common.liveness"] == liveness.HEALTH_CHECK_COMMAND
    assert importlib.util.find_spec(liveness.MODULE) is not None  # the module the command runs is in the images
    # ECS's limits for a container health check.
    assert 5 <= check["interval_seconds"] <= 300
    assert 2 <= check["timeout_seconds"] <= 60 and check["timeout_seconds"] < check["interval_seconds"]
    assert 1 <= check["retries"] <= 10
    assert 0 <= check["start_period_seconds"] <= 300
    # An app refreshes the file every REFRESH_SECONDS while its loop makes progress; on a quiet connection the
    # proof (a probe's answer) may lag by up to two refreshes, which must stay well inside the limit.
    assert 3 * liveness.REFRESH_SECONDS <= liveness.MAX_AGE_SECONDS
    assert liveness.HEARTBEAT_FILE.startswith("/tmp/")  # the only writable folder of the apps' containers


@pytest.mark.parametrize("stage", ["send", "receive"])
def test_the_images_docker_healthcheck_is_the_contracts(stage):
    dockerfile = (Path(__file__).resolve().parents[2] / "apps" / "Dockerfile").read_text()
    section = dockerfile.split(f" AS {stage}\n", 1)[1].split("\nFROM ", 1)[0]
    match = re.search(r"^HEALTHCHECK (.*?) \\\n\s+CMD (\[.*\])$", section, re.MULTILINE)
    assert match, f"no HEALTHCHECK in the {stage} stage"
    options = dict(option.lstrip("-").split("=") for option in match.group(1).split())
    assert json.loads(match.group(2)) == liveness.COMMAND
    assert options == {
        "interval": f"{liveness.INTERVAL_SECONDS}s",
        "timeout": f"{liveness.TIMEOUT_SECONDS}s",
        "start-period": f"{liveness.START_PERIOD_SECONDS}s",
        "retries": str(liveness.RETRIES),
    }
