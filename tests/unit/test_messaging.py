"""RabbitMessaging: the broker container (or Amazon MQ), its credentials, send and receive."""

import json

import pytest
from seaport import InvalidArgument, RabbitMessaging
from seaport.tools.testing import run

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
BASE = {
    "cluster_arn": "arn:aws:ecs:us-east-1:123456789012:cluster/main-1234567",
    "capacity_provider_name": "main-capacity-1234567",
    "instance_security_group_id": "sg-0123456789abcdef0",
    "send_image": f"{ECR}/send@sha256:" + "1" * 64,
    "receive_image": f"{ECR}/receive@sha256:" + "2" * 64,
    "consul_agent_address": "consul-agent:8500",
    "consul_agent_hosts": {"consul-agent": "172.17.0.1"},
    "consul_token_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:reader-AbCdEf",
    "broker_registrar": {"name": "rabbitmq-registrar", "image": f"{ECR}/registrar@sha256:" + "3" * 64},
}


def messaging_plan(**args):
    return run(lambda: RabbitMessaging("mq", {**BASE, **args}))


@pytest.fixture(scope="module")
def plan():
    return messaging_plan(send_count=2, receive_count=3, send_rate=20, queue_name="orders")


def definitions(plan, task_name):
    task = plan.named(task_name, "aws:ecs/taskDefinition:TaskDefinition")
    return {d["name"]: d for d in json.loads(task["inputs"]["containerDefinitions"])}


def test_broker_runs_the_pinned_image_with_a_fixed_node_name_and_a_persistent_volume(plan):
    broker = definitions(plan, "mq-broker-task")["rabbitmq"]
    assert broker["image"].startswith("rabbitmq:4.1.4-management@sha256:")
    assert broker["hostname"] == "rabbitmq"
    assert {"name": "RABBITMQ_NODENAME", "value": "rabbit@rabbitmq"} in broker["environment"]
    assert broker["mountPoints"] == [
        {"sourceVolume": "rabbitmq-data", "containerPath": "/var/lib/rabbitmq", "readOnly": False}
    ]
    (volume,) = plan.named("mq-broker-task", "aws:ecs/taskDefinition:TaskDefinition")["inputs"]["volumes"]
    assert volume["dockerVolumeConfiguration"]["scope"] == "shared"  # outlives the task on its instance
    assert broker["portMappings"] == [{"containerPort": 5672, "hostPort": 0, "protocol": "tcp"}]
    assert "rabbitmq-registrar" in definitions(plan, "mq-broker-task")


def test_broker_credentials_are_generated_stored_and_injected_never_guest(plan):
    password = plan.one("random:index/randomPassword:RandomPassword")["inputs"]
    assert password["length"] >= 32 and password["special"] is False
    (secret,) = plan.of_type("aws:secretsmanager/secret:Secret")
    assert plan.one("aws:secretsmanager/secretVersion:SecretVersion")["inputs"]["secretString"] == "[secret]"
    broker = definitions(plan, "mq-broker-task")["rabbitmq"]
    arn = secret["outputs"]["arn"]
    assert broker["secrets"] == [
        {"name": "RABBITMQ_DEFAULT_PASS", "valueFrom": f"{arn}:password::"},
        {"name": "RABBITMQ_DEFAULT_USER", "valueFrom": f"{arn}:username::"},
    ]
    text = json.dumps(plan.to_json())
    assert "guest" not in text


def test_only_one_broker_at_a_time(plan):
    service = plan.named("mq-broker", "aws:ecs/service:Service")["inputs"]
    assert service["desiredCount"] == 1
    assert (service["deploymentMinimumHealthyPercent"], service["deploymentMaximumPercent"]) == (0, 100)


def test_send_and_receive_settings(plan):
    send = definitions(plan, "mq-send-task")["send"]
    receive = definitions(plan, "mq-receive-task")["receive"]
    assert send["command"] == ["--rate", "20"]
    for app in (send, receive):
        variables = {e["name"]: e["value"] for e in app["environment"]}
        assert variables == {
            "RABBITMQ_SERVICE": "rabbitmq",
            "CONSUL_HTTP_ADDR": "consul-agent:8500",
            "RABBITMQ_QUEUE": "orders",
            "RABBITMQ_QUEUE_TYPE": "quorum",
        }
        assert app["stopTimeout"] == 60
    counts = {s["name"]: s["inputs"]["desiredCount"] for s in plan.of_type("aws:ecs/service:Service")}
    assert counts == {"mq-broker": 1, "mq-send": 2, "mq-receive": 3}


def test_amazonmq_broker_is_private_single_subnet_and_tls():
    plan = messaging_plan(
        broker_mode="amazonmq",
        vpc_id="vpc-0123456789abcdef0",
        subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    )
    broker = plan.one("aws:mq/broker:Broker")
    assert broker["inputs"]["publiclyAccessible"] is False
    assert broker["inputs"]["subnetIds"] == ["subnet-0123456789abcdef0"]
    assert broker["inputs"]["deploymentMode"] == "SINGLE_INSTANCE"
    assert not [s for s in plan.of_type("aws:ecs/service:Service") if s["name"] == "mq-broker"]
    send = definitions(plan, "mq-send-task")["send"]
    url = {e["name"]: e["value"] for e in send["environment"]}["RABBITMQ_URL"]
    assert url == broker["outputs"]["instances"][0]["endpoints"][0] and url.startswith("amqps://")
    assert plan.one("seaport:index:RabbitMessaging")["outputs"]["broker_endpoint"] == url


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"broker_mode": "kafka"}, "broker_mode='kafka' must be one of container, amazonmq"),
        ({"broker_registrar": None}, "broker_registrar is required"),
        ({"broker_mode": "amazonmq"}, "vpc_id is required with broker_mode='amazonmq'"),
        ({"rabbitmq_image": "rabbitmq:latest"}, "must be a pinned management image"),
        ({"queue_type": "stream"}, "queue_type='stream' must be one of quorum, classic"),
        ({"send_rate": 0}, "send_rate=0 must be between 1 and 10000"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(args, message):
    seen = {}

    def program():
        try:
            RabbitMessaging("mq", {**BASE, **args})
        except InvalidArgument as error:
            seen["error"] = str(error)

    plan = run(program)
    assert message in seen["error"]
    assert plan.resources == []
