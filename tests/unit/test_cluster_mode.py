"""brokerMode cluster (prod) and Amazon MQ's cluster deployment, checked by value in the plans."""

import json
import math

import pytest

import settings
from seaport import InvalidArgument, RabbitMessaging, rabbitmq_config
from seaport.tools.testing import run, run_program, stack_config
from tests.unit.conftest import REPO
from tests.unit.references import CA, CLUSTER, DISCOVERY
from tests.unit.test_consul import RecordingMocks

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:" + "a" * 64
BASE = {"cluster": CLUSTER, "discovery": DISCOVERY, "ca": CA, "send_image": IMAGE, "receive_image": IMAGE}


@pytest.fixture(scope="module")
def recorded_prod():
    mocks = RecordingMocks()
    plan = run_program(REPO / "__main__.py", stack="prod", config=stack_config(REPO, "prod"), mocks=mocks)
    return plan, mocks


def broker(plan):
    service = plan.named("messaging-broker", "aws:ecs/service:Service")
    task = plan.referenced(service["inputs"]["taskDefinition"])
    (container,) = json.loads(task["inputs"]["containerDefinitions"])
    return service["inputs"], task["inputs"], container


def test_prod_runs_three_nodes_one_per_instance_in_the_instances_network(recorded_prod):
    plan, _ = recorded_prod
    service, task, container = broker(plan)
    assert service["desiredCount"] == 3
    assert task["networkMode"] == "host"
    assert service["placementConstraints"] == [{"type": "distinctInstance"}]
    assert service["capacityProviderStrategies"][0]["capacityProvider"]
    # one node at a time during a deployment: the other two keep the majority. ECS rounds the floor up, so 66 %
    # of 3 is 2 (67 % would be 3 of 3: no node could stop, and max 100 % lets none start beside it)
    assert (service["deploymentMinimumHealthyPercent"], service["deploymentMaximumPercent"]) == (66, 100)
    assert container["portMappings"] == [{"containerPort": 5671, "hostPort": 5671, "protocol": "tcp"}]  # AMQPS
    assert task["volumes"] == [{"name": "rabbitmq-data", "hostPath": "/var/lib/seaport/rabbitmq"}]
    assert not plan.of_type("aws:mq/broker:Broker")
    assert "seaport-broker" not in {g["name"] for g in plan.of_type("aws:autoscaling/group:Group")}


@pytest.mark.parametrize("nodes", [3, 5, 7])
def test_a_deployment_stops_exactly_one_node_at_a_time(nodes):
    """ECS keeps ceil(desired x minimum healthy percent) tasks running and starts none beyond maximum percent:
    with 100 % that is one node down at a time, whatever the number of nodes."""
    args = {**BASE, "broker_mode": "cluster", "broker_nodes": nodes}
    service = run(lambda: RabbitMessaging("mq", args)).named("mq-broker", "aws:ecs/service:Service")["inputs"]
    floor = math.ceil(nodes * service["deploymentMinimumHealthyPercent"] / 100)
    assert (floor, service["deploymentMaximumPercent"]) == (nodes - 1, 100)


def test_the_nodes_form_the_cluster_through_consul_and_keep_three_replicas(recorded_prod):
    plan, _ = recorded_prod
    _, _, container = broker(plan)
    variables = {e["name"]: e["value"] for e in container["environment"]}
    conf = dict(line.split(" = ", 1) for line in variables["SEAPORT_RABBITMQ_CONF"].splitlines())
    assert conf["cluster_formation.peer_discovery_backend"] == "consul"
    assert (conf["cluster_formation.consul.host"], conf["cluster_formation.consul.port"]) == ("localhost", "8500")
    assert conf["cluster_formation.consul.svc"] == "rabbitmq"  # what send and receive look up
    # A node deregisters from Consul when it stops and its check fails while it restarts: forced clean-up would
    # evict every node a deployment restarts (an evicted node cannot rejoin with its data). Log, never remove.
    assert conf["cluster_formation.node_cleanup.only_log_warning"] == "true"
    assert conf["cluster_partition_handling"] == "pause_minority"
    conf_4x = dict(line.split(" = ", 1) for line in variables["SEAPORT_RABBITMQ_CONF_4X"].splitlines())
    assert conf_4x["quorum_queue.continuous_membership_reconciliation.enabled"] == "true"
    assert conf_4x["quorum_queue.continuous_membership_reconciliation.target_group_size"] == "3"
    assert variables["RABBITMQ_USE_LONGNAME"] == "true"
    assert "acl_token" not in variables["SEAPORT_RABBITMQ_CONF"], "the Consul token comes from a secret"


def test_the_nodes_talk_to_each_other_and_to_the_cli_tools_over_tls(recorded_prod):
    """Distribution over TLS with the broker's certificate (issued by the internal CA for rabbitmq): the options
    file's text for the wrapper, the server's and the CLI tools' (the health check's) Erlang arguments; the same
    ports as before between the instances, 25672 and the CLI range now carrying TLS."""
    plan, _ = recorded_prod
    _, _, container = broker(plan)
    variables = {e["name"]: e["value"] for e in container["environment"]}
    args = "-proto_dist inet_tls -ssl_dist_optfile /etc/rabbitmq/inter_node_tls.config"
    assert variables["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] == variables["RABBITMQ_CTL_ERL_ARGS"] == args
    assert variables["SEAPORT_RABBITMQ_INTER_NODE_TLS"] == rabbitmq_config.inter_node_tls_config()
    assert container["healthCheck"]["command"] == ["CMD", "rabbitmq-diagnostics", "-q", "check_running"]
    assert "SEAPORT_RABBITMQ_INTER_NODE_TLS" in container["command"][2]  # written by the wrapper
    # the certificate both ends present and check: the internal CA's, for the name the options file checks
    assert plan.named("messaging-broker-tls-request", "tls:index/certRequest:CertRequest")["inputs"]["dnsNames"] == [
        "rabbitmq",
        "localhost",
    ]
    # each node presents it as a client too (it dials its peers): OTP refuses a client certificate without clientAuth
    certificate = plan.named("messaging-broker-tls-cert", "tls:index/locallySignedCert:LocallySignedCert")
    assert {"server_auth", "client_auth"} <= set(certificate["inputs"]["allowedUses"])
    ca = plan.one("seaport:index:CertificateAuthority")["outputs"]["certificate_pem"]
    assert variables["SEAPORT_RABBITMQ_CA_PEM"] == ca  # the options file's cacertfile: the internal CA only
    ports = {
        (r["inputs"]["fromPort"], r["inputs"]["toPort"])
        for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r["name"].startswith("messaging-broker-")
    }
    assert ports == {(5671, 5671), (4369, 4369), (25672, 25672), (35672, 35682)}


def test_a_single_node_broker_keeps_plain_distribution(dev_plan):
    """Container mode (dev) has no peers: no distribution options, and ``rabbitmq-diagnostics ping`` (its health
    check) talks plain distribution inside the container, whose distribution port is not published."""
    service = dev_plan.named("messaging-broker", "aws:ecs/service:Service")
    task = dev_plan.referenced(service["inputs"]["taskDefinition"])
    container = next(c for c in json.loads(task["inputs"]["containerDefinitions"]) if c["name"] == "rabbitmq")
    names = {e["name"] for e in container["environment"]}
    assert not names & {
        "SEAPORT_RABBITMQ_INTER_NODE_TLS",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
        "RABBITMQ_CTL_ERL_ARGS",
    }
    assert "inter_node_tls" not in container["command"][2]
    assert container["healthCheck"]["command"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
    assert [m["containerPort"] for m in container["portMappings"]] == [5671]  # AMQPS only: no distribution port


def test_the_erlang_cookie_is_only_a_secret(recorded_prod):
    plan, mocks = recorded_prod
    _, _, container = broker(plan)
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    cookie = plan.named("messaging-erlang-cookie", "aws:secretsmanager/secret:Secret")["outputs"]["arn"]
    token = plan.named("consul-broker-token", "aws:secretsmanager/secret:Secret")["outputs"]["arn"]
    assert secrets["SEAPORT_ERLANG_COOKIE"] == cookie and secrets["SEAPORT_CONSUL_TOKEN"] == token
    assert "SEAPORT_ERLANG_COOKIE" not in {e["name"] for e in container["environment"]}
    value = mocks.generated["messaging-erlang-cookie.result"]
    assert len(value) == 64 and value not in json.dumps(plan.to_json())
    command = " ".join(container["command"])
    # written to the cookie file (0400), then removed from the environment before the server starts
    assert "chmod 0400 /var/lib/rabbitmq/.erlang.cookie" in command
    assert (
        "unset SEAPORT_RABBITMQ_DEFINITIONS SEAPORT_RABBITMQ_KEY_PEM SEAPORT_CONSUL_TOKEN SEAPORT_ERLANG_COOKIE"
        in command
    )


def test_a_cluster_needs_as_many_instances_as_nodes():
    values = {"brokerMode": "cluster", "minInstances": 2}  # the others take their defaults
    with pytest.raises(settings.SettingsError) as error:
        settings.from_values(values, "test")
    assert "seaport:minInstances=2 must be at least 3" in str(error.value)


def test_cluster_mode_needs_the_brokers_consul_token():
    discovery = {k: v for k, v in DISCOVERY.items() if k != "broker_token_secret_arn"}
    args = {"cluster": CLUSTER, "discovery": discovery, "ca": CA, "send_image": IMAGE, "receive_image": IMAGE}
    error = run(lambda: RabbitMessaging("mq", {**args, "broker_mode": "cluster"}), expect=InvalidArgument)
    assert [p.path for p in error.problems] == ["discovery.broker_token_secret_arn"]
    error = run(
        lambda: RabbitMessaging("mq", {**args, "broker_mode": "cluster", "broker_nodes": 4}), expect=InvalidArgument
    )
    assert "broker_nodes=4 must be one of 3, 5, 7" in str(error)


def test_prod_with_amazon_mq_plans_a_multi_az_cluster():
    config = {**stack_config(REPO, "prod"), "seaport:brokerMode": "amazonmq"}
    plan = run_program(REPO / "__main__.py", stack="prod", config=config)
    mq = plan.one("aws:mq/broker:Broker")["inputs"]
    assert mq["deploymentMode"] == "CLUSTER_MULTI_AZ"
    assert (mq["engineVersion"], mq["hostInstanceType"]) == ("4.2", "mq.m7g.large")
    private = sorted(s["outputs"]["id"] for s in plan.of_type("aws:ec2/subnet:Subnet") if "private" in s["name"])
    assert sorted(mq["subnetIds"]) == private and len(private) == 3
    assert mq["publiclyAccessible"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {
                "amazon_mq_deployment_mode": "CLUSTER_MULTI_AZ",
                "amazon_mq_instance_type": "mq.t3.micro",
                "amazon_mq_engine_version": "3.13",
            },
            "amazon_mq_instance_type='mq.t3.micro' runs single-instance brokers only",
        ),
        (
            {"amazon_mq_instance_type": "mq.m5.large"},
            "cannot run amazon_mq_engine_version=4.2 (RabbitMQ 4.x runs on mq.m7g.* only)",
        ),
        ({"amazon_mq_deployment_mode": "ACTIVE_STANDBY_MULTI_AZ"}, "must be one of SINGLE_INSTANCE, CLUSTER_MULTI_AZ"),
    ],
)
def test_amazon_mq_pairings_are_checked_before_anything_is_created(args, message):
    base = {"cluster": CLUSTER, "send_image": IMAGE, "receive_image": IMAGE, "broker_mode": "amazonmq"}
    error = run(lambda: RabbitMessaging("mq", {**base, **args}), expect=InvalidArgument)
    assert message in str(error)
