"""The broker seaport runs itself: a dedicated instance, its configuration and definitions as data."""

import base64
import hashlib
import json

import pytest

from seaport import ContainerService, EcsCluster, InvalidArgument, RabbitMessaging
from seaport import rabbitmq_config as config
from seaport.tools.testing import run
from tests.unit.references import CA, CLUSTER, DISCOVERY, NETWORK

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:" + "a" * 64


def test_a_dedicated_instance_is_one_instance_outside_the_capacity_provider_marked_by_an_attribute():
    plan = run(lambda: EcsCluster("main", {"network": NETWORK, "dedicated_instances": {"broker": "t3.medium"}}))
    group = plan.named("main-broker", "aws:autoscaling/group:Group")["inputs"]
    assert (group["minSize"], group["maxSize"], group["desiredCapacity"]) == (1, 1, 1)
    assert "instanceRefresh" not in group, "a refresh would replace the instance and lose its data"
    (provider,) = plan.of_type("aws:ecs/capacityProvider:CapacityProvider")
    assert (
        provider["inputs"]["autoScalingGroupProvider"]["autoScalingGroupArn"]
        == plan.named("main-instances", "aws:autoscaling/group:Group")["outputs"]["arn"]
    )
    template = plan.named("main-broker", "aws:ec2/launchTemplate:LaunchTemplate")["inputs"]
    assert template["instanceType"] == "t3.medium"
    assert template["metadataOptions"]["httpTokens"] == "required"
    script = base64.b64decode(template["userData"]).decode()
    assert 'ECS_INSTANCE_ATTRIBUTES={"seaport.dedicated": "broker"}' in script
    reference = plan.one("seaport:index:EcsCluster")["outputs"]["reference"]
    assert reference["dedicated_instances"] == ["broker"]


def test_a_service_on_a_dedicated_instance_is_placed_there_by_launch_type():
    args = {"cluster": CLUSTER, "container": {"image": IMAGE}, "dedicated_instance": "broker"}
    service = run(lambda: ContainerService("db", args)).one("aws:ecs/service:Service")["inputs"]
    assert service["launchType"] == "EC2" and "capacityProviderStrategies" not in service
    assert service["placementConstraints"] == [
        {"type": "memberOf", "expression": "attribute:seaport.dedicated == broker"}
    ]
    unknown = {**args, "dedicated_instance": "cache"}
    error = run(lambda: ContainerService("db", unknown), expect=InvalidArgument)
    assert [p.path for p in error.problems] == ["dedicated_instance"]
    assert "not one of the cluster's dedicated_instances ['broker']" in str(error)


def test_container_mode_refuses_a_cluster_without_the_broker_instance():
    cluster = {**CLUSTER, "dedicated_instances": []}
    args = {"cluster": cluster, "discovery": DISCOVERY, "ca": CA, "send_image": IMAGE, "receive_image": IMAGE}
    error = run(lambda: RabbitMessaging("mq", args), expect=InvalidArgument)
    assert "broker_mode='container' needs the cluster's dedicated instance 'broker'" in str(error)
    assert "dedicated_instances={'broker': ''}" in str(error)


def test_the_watermark_is_half_the_task_memory_and_every_key_is_one_rabbitmq_accepts():
    assert config.memory_watermark_mib(1024) == 512
    rendered = config.render(config.conf(1024))
    assert rendered.splitlines() == [
        "vm_memory_high_watermark.absolute = 512MiB",
        "disk_free_limit.absolute = 2GB",
        "definitions.import_backend = local_filesystem",
        "definitions.local.path = /etc/rabbitmq/seaport-definitions.json",
        "definitions.skip_if_unchanged = true",
        "heartbeat = 30",
        # AMQP over TLS only, with the certificate the internal CA issued for "rabbitmq"
        "listeners.tcp = none",
        "listeners.ssl.default = 5671",
        "ssl_options.cacertfile = /etc/rabbitmq/tls/ca.pem",
        "ssl_options.certfile = /etc/rabbitmq/tls/cert.pem",
        "ssl_options.keyfile = /etc/rabbitmq/tls/key.pem",
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false",
        "ssl_options.versions.1 = tlsv1.3",
        "ssl_options.versions.2 = tlsv1.2",
        "management.tcp.ip = 127.0.0.1",
    ]


def test_the_password_hash_is_rabbitmqs_salted_sha256_and_stable():
    first = config.password_hash("s3cret", "seaport:seaport")
    raw = base64.b64decode(first)
    assert len(raw) == 36 and raw[4:] == hashlib.sha256(raw[:4] + b"s3cret").digest()
    assert config.password_hash("s3cret", "seaport:seaport") == first, "same password, same definitions"
    assert config.password_hash("other", "seaport:seaport") != first


def test_definitions_hold_the_user_with_publish_and_consume_rights_only():
    document = json.loads(config.definitions_json("seaport", "pw", "orders", "classic"))
    assert document["permissions"] == [
        {"user": "seaport", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
    ]
    assert document["users"][0]["tags"] == []
    (policy,) = document["policies"]
    assert "delivery-limit" not in policy["definition"]  # a classic queue has none (the policy would not apply)


@pytest.mark.parametrize(
    "keys",
    [config.conf(1024), {**config.cluster_conf(2048, 3), **config.cluster_conf_4x(3)}],
    ids=["container", "cluster"],
)
def test_definitions_are_loaded_the_one_way_4x_boots_with(keys):
    """RabbitMQ (3.10 and 4.x, rabbit_definitions) treats any ``definitions.*`` key as a pluggable import source
    and refuses to boot without ``definitions.import_backend``; the classic ``load_definitions`` beside it would
    also import the file a second time."""
    assert "load_definitions" not in keys
    assert keys["definitions.import_backend"] == "local_filesystem"
    assert keys["definitions.local.path"] == config.DEFINITIONS_FILE
    assert keys["definitions.skip_if_unchanged"] == "true"
