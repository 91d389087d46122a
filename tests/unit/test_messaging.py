"""RabbitMessaging: the broker container (or Amazon MQ), its credentials, send and receive."""

import base64
import hashlib
import json

import pulumi
import pytest

from seaport import InvalidArgument, RabbitMessaging
from seaport.contract import liveness, telemetry
from seaport.tools.testing import run
from tests.unit.references import CA, CA_CERT, CLUSTER, DISCOVERY, INSTANCE_SG, PRIVATE_SUBNETS, REGISTRAR_IMAGE
from tests.unit.test_consul import RecordingMocks

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
BASE = {
    "cluster": CLUSTER,
    "discovery": DISCOVERY,
    "ca": CA,
    "send_image": f"{ECR}/send@sha256:" + "1" * 64,
    "receive_image": f"{ECR}/receive@sha256:" + "2" * 64,
}


def messaging_plan(**args):
    return run(lambda: RabbitMessaging("mq", {**BASE, **args}))


@pytest.fixture(scope="module")
def recorded():
    mocks = RecordingMocks()
    args = {**BASE, "send_tasks": 2, "receive_tasks": 3, "send_rate": 20, "queue_name": "orders"}
    return run(lambda: RabbitMessaging("mq", args), mocks=mocks), mocks


@pytest.fixture(scope="module")
def plan(recorded):
    return recorded[0]


@pytest.fixture(scope="module")
def amazonmq_plan():
    return run(lambda: RabbitMessaging("mq", {**BASE, "discovery": None, "broker_mode": "amazonmq"}))


def definitions(plan, task_name):
    task = plan.named(task_name, "aws:ecs/taskDefinition:TaskDefinition")
    return {d["name"]: d for d in json.loads(task["inputs"]["containerDefinitions"])}


def environment(container):
    return {e["name"]: e["value"] for e in container["environment"]}


def credentials_arn(plan):
    return plan.named("mq-broker-credentials", "aws:secretsmanager/secret:Secret")["outputs"]["arn"]


def test_broker_runs_the_pinned_image_on_its_dedicated_instance_with_its_data_on_that_host(plan):
    """A restart or a deployment brings the broker back to the instance that holds its data."""
    containers = definitions(plan, "mq-broker-task")
    broker = containers["rabbitmq"]
    assert broker["image"].startswith("public.ecr.aws/docker/library/rabbitmq:4.3.4-management@sha256:")
    assert broker["hostname"] == "rabbitmq"
    assert broker["mountPoints"] == [
        {"sourceVolume": "rabbitmq-data", "containerPath": "/var/lib/rabbitmq", "readOnly": False}
    ]
    (volume,) = plan.named("mq-broker-task", "aws:ecs/taskDefinition:TaskDefinition")["inputs"]["volumes"]
    assert volume == {"name": "rabbitmq-data", "hostPath": "/var/lib/seaport/rabbitmq"}
    service = plan.named("mq-broker", "aws:ecs/service:Service")["inputs"]
    assert service["launchType"] == "EC2" and "capacityProviderStrategies" not in service
    assert service["placementConstraints"] == [
        {"type": "memberOf", "expression": "attribute:seaport.dedicated == broker"}
    ]
    assert broker["portMappings"] == [{"containerPort": 5671, "hostPort": 0, "protocol": "tcp"}]  # AMQPS only
    assert broker["healthCheck"]["command"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]


def test_the_broker_serves_amqp_over_tls_with_a_certificate_for_its_service_name(plan):
    broker = definitions(plan, "mq-broker-task")["rabbitmq"]
    variables = environment(broker)
    request = plan.named("mq-broker-tls-request", "tls:index/certRequest:CertRequest")["inputs"]
    assert request["dnsNames"] == ["rabbitmq", "localhost"] and request["subject"]["commonName"] == "rabbitmq"
    certificate = plan.named("mq-broker-tls-cert", "tls:index/locallySignedCert:LocallySignedCert")
    assert variables["SEAPORT_RABBITMQ_CERT_PEM"] == certificate["outputs"]["certPem"]
    assert variables["SEAPORT_RABBITMQ_CA_PEM"] == CA_CERT
    conf = dict(line.split(" = ", 1) for line in variables["SEAPORT_RABBITMQ_CONF"].splitlines())
    assert (conf["listeners.tcp"], conf["listeners.ssl.default"]) == ("none", "5671")
    assert "PRIVATE KEY" not in json.dumps(broker["environment"])
    # Named after the stack (run() plans stack "test"): no host name lookup in the way of a client's connection.
    assert conf["cluster_name"] == "seaport-test"


def test_broker_throttles_publishers_before_its_container_runs_out_of_memory(plan):
    """An absolute watermark from the task's memory: RabbitMQ's default is relative to the host's memory."""
    broker = definitions(plan, "mq-broker-task")["rabbitmq"]
    variables = environment(broker)
    conf = dict(line.split(" = ", 1) for line in variables["SEAPORT_RABBITMQ_CONF"].splitlines())
    assert broker["memory"] == 1024
    assert conf["vm_memory_high_watermark.absolute"] == "512MiB"
    assert conf["disk_free_limit.absolute"] == "2GB"
    assert conf["definitions.local.path"] == "/etc/rabbitmq/seaport-definitions.json"
    assert variables["RABBITMQ_NODENAME"] == "rabbit@rabbitmq"
    # the wrapper writes the files, then hands over to the image's entry point
    command = " ".join(broker["command"])
    assert "/etc/rabbitmq/conf.d/90-seaport.conf" in command and command.endswith(
        "exec docker-entrypoint.sh rabbitmq-server"
    )


def test_the_broker_imports_its_user_queues_and_policy_at_every_boot(recorded):
    """The definitions (a secret: they hold the password hash) create the apps' user, the work queue, its
    dead-letter queue and the policy with the delivery limit and at-least-once dead-lettering."""
    plan, mocks = recorded
    broker = definitions(plan, "mq-broker-task")["rabbitmq"]
    secret = plan.named("mq-broker-definitions", "aws:secretsmanager/secret:Secret")
    key = plan.named("mq-broker-tls-key", "aws:secretsmanager/secret:Secret")["outputs"]["arn"]
    assert broker["secrets"] == [
        {"name": "SEAPORT_RABBITMQ_DEFINITIONS", "valueFrom": secret["outputs"]["arn"]},
        {"name": "SEAPORT_RABBITMQ_KEY_PEM", "valueFrom": key},
    ]
    document = json.loads(mocks.secret_strings["mq-broker-definitions"])
    (user,) = document["users"]
    password = mocks.generated["mq-broker-password.result"]
    raw = base64.b64decode(user["password_hash"])
    assert user["name"] == "seaport" and user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert raw[4:] == hashlib.sha256(raw[:4] + password.encode()).digest(), "the hash is of the generated password"
    assert user["tags"] == []
    assert [q["name"] for q in document["queues"]] == ["orders.dead", "orders"]
    (policy,) = document["policies"]
    assert policy["pattern"] == "^orders$"
    assert policy["definition"] == {
        "delivery-limit": 10,
        "dead-letter-exchange": "",
        "dead-letter-routing-key": "orders.dead",
        "dead-letter-strategy": "at-least-once",
        "overflow": "reject-publish",
    }
    assert password not in json.dumps(document)


def test_broker_registers_in_consul_as_rabbitmq_with_a_tcp_check(plan):
    registrar = definitions(plan, "mq-broker-task")["rabbitmq-registrar"]
    assert registrar["image"] == REGISTRAR_IMAGE and registrar["essential"] is True
    assert environment(registrar) == {
        "REGISTRAR_SERVICE": "rabbitmq",
        "REGISTRAR_CONTAINER": "rabbitmq",
        "REGISTRAR_CONTAINER_PORT": "5671",
        "REGISTRAR_CHECK": "tcp",
        "CONSUL_HTTP_ADDR": "consul-agent:8500",
    }
    assert registrar["secrets"] == [{"name": "CONSUL_HTTP_TOKEN", "valueFrom": DISCOVERY["registrar_token_secret_arn"]}]


def test_broker_credentials_are_generated_stored_and_injected_never_guest(recorded):
    plan, mocks = recorded
    password = plan.one("random:index/randomPassword:RandomPassword")
    assert password["inputs"]["length"] >= 32 and password["inputs"]["special"] is False
    assert password["outputs"]["result"] == "[secret]"
    for version in plan.of_type("aws:secretsmanager/secretVersion:SecretVersion"):
        assert version["inputs"]["secretString"] == "[secret]"
    credentials = json.loads(mocks.secret_strings["mq-broker-credentials"])
    assert credentials == {"username": "seaport", "password": mocks.generated["mq-broker-password.result"]}
    text = json.dumps(plan.to_json())
    assert "guest" not in text
    value = mocks.generated["mq-broker-password.result"]
    assert len(value) == 32 and value not in text


def test_only_one_broker_at_a_time(plan):
    service = plan.named("mq-broker", "aws:ecs/service:Service")["inputs"]
    assert service["desiredCount"] == 1
    assert (service["deploymentMinimumHealthyPercent"], service["deploymentMaximumPercent"]) == (0, 100)


def test_send_and_receive_settings(plan):
    send = definitions(plan, "mq-send-task")["send"]
    receive = definitions(plan, "mq-receive-task")["receive"]
    assert send["command"] == ["--rate", "20"]
    assert "command" not in receive
    arn = credentials_arn(plan)
    for app in (send, receive):
        assert environment(app) == {
            "RABBITMQ_SERVICE": "rabbitmq",
            "CONSUL_HTTP_ADDR": "consul-agent:8500",
            "RABBITMQ_QUEUE": "orders",
            "RABBITMQ_QUEUE_TYPE": "quorum",
            "RABBITMQ_MAX_DELIVERIES": "10",  # the broker policy's delivery limit
            # the Cluster dimension of the apps' metrics: two stacks' queues of the same name stay apart
            "METRICS_CLUSTER": CLUSTER["name"],
            # TLS only: the broker's certificate is checked against the internal CA and the name rabbitmq
            "RABBITMQ_TLS": "true",
            "RABBITMQ_TLS_SERVER_NAME": "rabbitmq",
            "RABBITMQ_CA_PEM": CA_CERT,
        }
        assert app["secrets"] == [
            {"name": "CONSUL_HTTP_TOKEN", "valueFrom": DISCOVERY["reader_token_secret_arn"]},
            {"name": "RABBITMQ_PASSWORD", "valueFrom": f"{arn}:password::"},
            {"name": "RABBITMQ_USERNAME", "valueFrom": f"{arn}:username::"},
        ]
        assert app["extraHosts"] == [{"hostname": "consul-agent", "ipAddress": "172.17.0.1"}]
        assert app["stopTimeout"] == 60
        # liveness: the app's own check that its loop still makes progress, as the apps' contract says
        assert app["healthCheck"] == {
            "command": ["CMD", "python", "-m", "apps.common.liveness"],
            "interval": liveness.INTERVAL_SECONDS,
            "timeout": liveness.TIMEOUT_SECONDS,
            "retries": liveness.RETRIES,
            "startPeriod": liveness.START_PERIOD_SECONDS,
        }
    counts = {s["name"]: s["inputs"]["desiredCount"] for s in plan.of_type("aws:ecs/service:Service")}
    assert counts == {"mq-broker": 1, "mq-send": 2, "mq-receive": 3}


def test_the_apps_metrics_carry_the_name_of_the_cluster_they_run_on():
    """Given as another language hands it over (an output of a dict), the cluster reference still names them."""
    other = "seaport-7654321"
    plan = run(lambda: RabbitMessaging("mq", {**BASE, "cluster": pulumi.Output.from_input({**CLUSTER, "name": other})}))
    for app in ("send", "receive"):
        variables = environment(definitions(plan, f"mq-{app}-task")[app])
        assert variables[telemetry.CLUSTER_VARIABLE] == other, app


def test_services_wait_for_the_credentials_value(plan):
    version = plan.named("mq-broker-credentials", "aws:secretsmanager/secretVersion:SecretVersion")
    definitions_version = plan.named("mq-broker-definitions", "aws:secretsmanager/secretVersion:SecretVersion")
    assert plan.depends_on(plan.named("mq-broker-task", "aws:ecs/taskDefinition:TaskDefinition"), definitions_version)
    for app in ("send", "receive"):
        task = plan.named(f"mq-{app}-task", "aws:ecs/taskDefinition:TaskDefinition")
        assert plan.depends_on(task, version), app
        assert plan.depends_on(plan.named(f"mq-{app}", "aws:ecs/service:Service"), task), app


def test_amazonmq_broker_is_private_single_subnet_and_tls(amazonmq_plan):
    plan = amazonmq_plan
    broker = plan.one("aws:mq/broker:Broker")
    assert broker["inputs"]["publiclyAccessible"] is False
    assert broker["inputs"]["subnetIds"] == PRIVATE_SUBNETS[:1]
    assert broker["inputs"]["deploymentMode"] == "SINGLE_INSTANCE"
    assert broker["inputs"]["engineType"] == "RabbitMQ"
    assert not [s for s in plan.of_type("aws:ecs/service:Service") if s["name"] == "mq-broker"]
    send = definitions(plan, "mq-send-task")["send"]
    variables = environment(send)
    assert variables == {
        "RABBITMQ_URL": broker["outputs"]["instances"][0]["endpoints"][0],
        "RABBITMQ_QUEUE": "messages",
        "RABBITMQ_QUEUE_TYPE": "quorum",
        "RABBITMQ_MAX_DELIVERIES": "10",
        "METRICS_CLUSTER": CLUSTER["name"],
    }
    assert variables["RABBITMQ_URL"].startswith("amqps://")
    assert plan.one("seaport:index:RabbitMessaging")["outputs"]["broker_endpoint"] == variables["RABBITMQ_URL"]


def test_amazonmq_broker_admits_amqps_from_the_cluster_only(amazonmq_plan):
    plan = amazonmq_plan
    group = plan.named("mq-broker", "aws:ec2/securityGroup:SecurityGroup")["outputs"]["id"]
    assert plan.one("aws:mq/broker:Broker")["inputs"]["securityGroups"] == [group]
    assert_admits_amqps_only_from(plan, group, INSTANCE_SG)


def assert_admits_amqps_only_from(plan, group, source):
    """Security group ``group`` admits AMQPS (5671/tcp) from security group ``source``, and nothing else."""
    rules = [
        r["inputs"]
        for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r["inputs"]["securityGroupId"] == group
    ]
    assert [(r["ipProtocol"], r["fromPort"], r["toPort"], r.get("referencedSecurityGroupId")) for r in rules] == [
        ("tcp", 5671, 5671, source)
    ]
    assert all("cidrIpv4" not in r and "cidrIpv6" not in r for r in rules)


def test_bad_arguments_are_all_reported_before_anything_is_registered():
    mocks = RecordingMocks()
    args = {
        **BASE,
        "discovery": None,
        "rabbitmq_image": "rabbitmq:latest",
        "queue_type": "stream",
        "send_rate": 0,
        "send_tasks": 51,
    }
    error = run(lambda: RabbitMessaging("mq", args), mocks=mocks, expect=InvalidArgument)
    assert [p.path for p in error.problems] == ["discovery", "rabbitmq_image", "queue_type", "send_tasks", "send_rate"]
    text = str(error)
    for message in (
        "discovery is required with broker_mode='container'",
        "rabbitmq_image='rabbitmq:latest' must be a pinned management image",
        "queue_type='stream' must be one of quorum, classic",
        "send_tasks=51 must be between 0 and 50",
        "send_rate=0 must be between 1 and 10000",
    ):
        assert message in text
    assert mocks.registered == []


def test_unknown_broker_mode_and_missing_images_are_refused():
    args = {"cluster": CLUSTER, "broker_mode": "kafka"}
    error = run(lambda: RabbitMessaging("mq", args), expect=InvalidArgument)
    assert {p.path for p in error.problems} == {"send_image", "receive_image", "broker_mode"}
    assert "broker_mode='kafka' must be one of container, cluster, amazonmq" in str(error)
