"""Where the RabbitMQ broker runs: one container on the cluster, or Amazon MQ."""

from typing import Any, NamedTuple

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from . import rabbitmq_config as config
from .contract import broker as contract
from .images import pinned_image
from .pki import issue
from .references import get
from .secrets import StoredSecret
from .security_groups import admit, admit_range, security_group
from .service import ContainerService
from .tagging import name_tags

BROKER_SERVICE = contract.SERVICE_NAME  # the Consul service name send and receive look up
BROKER_USER = "seaport"
AMQP_PORT = contract.AMQP_PORT
AMQPS_PORT = contract.AMQPS_PORT
# A supported release, from the ECR Public mirror of Docker's official image (Docker Hub allows anonymous
# pulls only 10 an hour per address, and every new instance pulls).
DEFAULT_RABBITMQ_IMAGE = "public.ecr.aws/docker/library/rabbitmq:4.3.4-management"
# The cluster's dedicated instance the container-mode broker lives on (EcsCluster dedicated_instances).
DEDICATED_INSTANCE = "broker"
# The cluster's dedicated instances of a clustered broker, one per node (EcsCluster dedicated_instance_counts).
NODE_INSTANCE = "broker-node"
DATA_PATH = "/var/lib/seaport/rabbitmq"
BROKER_MEMORY_MIB = 1024


def cluster_name() -> str:
    """What the broker's nodes call their cluster: ``seaport-<stack>`` (a stack's name is always a valid one)."""
    return f"{config.DEFAULT_CLUSTER_NAME}-{pulumi.get_stack()}"


def container(name: str, a: dict[str, Any], password: pulumi.Output[str], parent: pulumi.Resource) -> ContainerService:
    """One RabbitMQ node on the cluster's dedicated ``broker`` instance, its data on that instance's disk,
    registered in Consul as ``rabbitmq`` (a health-checked TCP port)."""
    child = pulumi.ResourceOptions(parent=parent)
    image = a["rabbitmq_image"]
    if isinstance(image, str):
        image = pinned_image(image, opts=pulumi.InvokeOutputOptions(parent=parent))
    definitions = _definitions(name, a, password, child)
    tls = _tls(name, a, parent)
    return ContainerService(
        f"{name}-broker",
        {
            "cluster": a["cluster"],
            "dedicated_instance": DEDICATED_INSTANCE,
            "discovery": a["discovery"],
            "consul_service": {"name": BROKER_SERVICE, "check": "tcp"},
            "container": {
                **_node(image, config.START_COMMAND, "ping", start_period_seconds=60),
                # A fixed node name: the broker finds its own data again after a restart.
                "hostname": BROKER_SERVICE,
                "environment": {
                    "RABBITMQ_NODENAME": f"rabbit@{BROKER_SERVICE}",
                    config.CONF_VARIABLE: config.render(config.conf(BROKER_MEMORY_MIB, cluster_name=cluster_name())),
                    **tls.environment,
                },
                "secrets": {config.DEFINITIONS_VARIABLE: definitions.arn, **tls.secrets},
            },
            # On the dedicated instance's disk: a restarted or redeployed broker finds its data again.
            "volumes": [{"name": "rabbitmq-data", "host_path": DATA_PATH}],
            "desired_tasks": 1,
            # One node owns the data: stop the old task before starting the new one.
            "min_healthy_percent": 0,
            "max_percent": 100,
            "stop_timeout_seconds": 120,
            "log_retention_days": a["log_retention_days"],
            "tags": a["tags"],
        },
        opts=child,
    )


def cluster(name: str, a: dict[str, Any], password: pulumi.Output[str], parent: pulumi.Resource) -> ContainerService:
    """``broker_nodes`` RabbitMQ nodes on as many dedicated ``broker-node`` instances of the cluster, one each, in
    the instances' network: they find each other and register as ``rabbitmq`` through the local Consul agent
    (Consul peer discovery), keep their data on their instance, and replicate every quorum queue to all of them.

    Exactly ``broker_nodes`` instances carry the attribute and no two tasks share one (``distinctInstance``), so
    a node that restarts or is redeployed can only start on the instance it left: it keeps its name (the
    instance's DNS name) and its data, and rejoins as the member it was.

    Nodes talk to each other and to the CLI tools (the health check too) over TLS only: Erlang distribution over
    TLS with the broker's certificate, each end accepting only a certificate from the internal CA that names
    ``rabbitmq`` (``rabbitmq_config.inter_node_tls_config``), besides the shared Erlang cookie."""
    child = pulumi.ResourceOptions(parent=parent)
    nodes = a["broker_nodes"]
    image = a["rabbitmq_image"]
    if isinstance(image, str):
        image = pinned_image(image, opts=pulumi.InvokeOutputOptions(parent=parent))
    definitions = _definitions(name, a, password, child)
    tls = _tls(name, a, parent)
    # Nodes of one cluster authenticate each other with a shared Erlang cookie.
    cookie_value = random.RandomPassword(f"{name}-erlang-cookie", length=64, special=False, opts=child).result
    cookie = StoredSecret(
        f"{name}-erlang-cookie", cookie_value, "Erlang cookie of the RabbitMQ cluster", a["tags"], child
    )
    _cluster_rules(name, a, child)
    return ContainerService(
        f"{name}-broker",
        {
            "cluster": a["cluster"],
            "network_mode": "host",  # stable node names (the instance's DNS name) and distribution ports
            # One node per dedicated broker-node instance, and only there: its name and data stay with it.
            "dedicated_instance": NODE_INSTANCE,
            "placement_constraints": [{"type": "distinctInstance"}],
            "container": {
                **_node(image, config.CLUSTER_START_COMMAND, "check_running", start_period_seconds=120),
                "environment": {
                    "RABBITMQ_USE_LONGNAME": "true",
                    config.CONF_VARIABLE: config.render(
                        config.cluster_conf(BROKER_MEMORY_MIB, nodes, cluster_name=cluster_name())
                    ),
                    config.CONF_4X_VARIABLE: config.render(config.cluster_conf_4x(nodes)),
                    **tls.environment,
                    # Distribution over TLS: the options file the wrapper writes, the server's and CLI tools' args.
                    **config.cluster_environment(),
                },
                "secrets": {
                    config.DEFINITIONS_VARIABLE: definitions.arn,
                    **tls.secrets,
                    config.CONSUL_TOKEN_VARIABLE: get(a["discovery"], "broker_token_secret_arn"),
                    config.COOKIE_VARIABLE: cookie.arn,
                },
            },
            # On each instance's disk: a restarted node finds its data and rejoins with it.
            "volumes": [{"name": "rabbitmq-data", "host_path": DATA_PATH}],
            "desired_tasks": nodes,
            # One node at a time: the others keep a majority (quorum queues stay available). ECS rounds the floor
            # up (3 x 67 % is 3 tasks: nothing could stop), so round the percentage down: 66 % of 3 is 2. With
            # max_percent 100 the old node stops before the new one starts, on the instance it frees.
            "min_healthy_percent": 100 * (nodes - 1) // nodes,
            "max_percent": 100,
            "stop_timeout_seconds": 120,
            "log_retention_days": a["log_retention_days"],
            # The nodes register themselves in Consul as the service the apps look up (no registrar sidecar).
            "tags": {**a["tags"], "seaport:consul-service": BROKER_SERVICE},
        },
        opts=child,
    )


def _node(image: Any, command: list[str], check: str, start_period_seconds: int) -> dict[str, Any]:
    """What every broker node's container has: the wrapper command, AMQPS, its data directory on a volume, and
    a health check (``rabbitmq-diagnostics <check>``)."""
    return {
        "name": BROKER_SERVICE,
        "image": image,
        "port": AMQPS_PORT,
        "cpu": 512,
        "memory_mib": BROKER_MEMORY_MIB,
        "command": command,
        "mount_points": [{"source_volume": "rabbitmq-data", "container_path": "/var/lib/rabbitmq"}],
        # The image keeps its defaults, plugin list and TLS scratch directory under /etc/rabbitmq and /tmp,
        # which its entry point and the wrapper write at start (README, Security).
        "read_only_root_filesystem": False,
        "health_check": {
            "command": ["CMD", "rabbitmq-diagnostics", "-q", check],
            "interval_seconds": 30,
            "timeout_seconds": 10,
            "start_period_seconds": start_period_seconds,
        },
    }


def _definitions(
    name: str, a: dict[str, Any], password: pulumi.Output[str], child: pulumi.ResourceOptions
) -> StoredSecret:
    """The definitions a node imports at every boot (a secret: they hold the password hash)."""
    return StoredSecret(
        f"{name}-broker-definitions",
        password.apply(lambda p: config.definitions_json(BROKER_USER, p, a["queue_name"], str(a["queue_type"]))),
        "RabbitMQ definitions: the apps' user (password hash), queues and policy, imported at every boot",
        a["tags"],
        child,
    )


class _Tls(NamedTuple):
    environment: dict[str, Any]
    secrets: dict[str, Any]


def _tls(name: str, a: dict[str, Any], parent: pulumi.Resource) -> _Tls:
    """The broker's certificate for the name ``rabbitmq`` (what the apps verify, whatever address Consul gave
    them), issued by the internal CA; its key in Secrets Manager."""
    issued = issue(f"{name}-broker-tls", a["ca"], BROKER_SERVICE, [BROKER_SERVICE, "localhost"], [], a["tags"], parent)
    environment = {config.CA_VARIABLE: get(a["ca"], "certificate_pem"), config.CERT_VARIABLE: issued.certificate_pem}
    return _Tls(environment, {config.KEY_VARIABLE: issued.key.arn})


def _cluster_rules(name: str, a: dict[str, Any], child: pulumi.ResourceOptions) -> None:
    """AMQP from the cluster's instances (the apps), and epmd, distribution and CLI ports between them only (the
    distribution and CLI ports carry TLS; epmd only maps node names to ports)."""
    instances = get(a["cluster"], "instance_security_group_id")
    ports = [(AMQPS_PORT, "tcp", "AMQPS from the apps"), *config.CLUSTER_PORTS]
    admit(f"{name}-broker", instances, ports, {"instances": instances}, child)
    admit_range(
        f"{name}-broker-cli-from-instances",
        instances,
        config.CLI_PORTS,
        instances,
        "RabbitMQ CLI tools between the broker nodes",
        child,
    )


def amazon_mq(
    name: str, a: dict[str, Any], user: str, password: pulumi.Output[str], parent: pulumi.Resource
) -> aws.mq.Broker:
    """A private Amazon MQ for RabbitMQ broker reachable on AMQPS from the cluster's instances only."""
    child = pulumi.ResourceOptions(parent=parent)
    network = get(a["cluster"], "network")
    single = str(a["amazon_mq_deployment_mode"]) == "SINGLE_INSTANCE"
    group = security_group(
        f"{name}-broker",
        network.apply(lambda n: n["vpc_id"]),
        f"Amazon MQ broker of {name}: AMQPS from the cluster's instances only",
        a["tags"],
        child,
    ).id
    admit(
        f"{name}-broker",
        group,
        [(AMQPS_PORT, "tcp", "AMQPS")],
        {"cluster": get(a["cluster"], "instance_security_group_id")},
        child,
    )
    return aws.mq.Broker(
        f"{name}-broker",
        # a readable, stable name: the Broker dimension of its CloudWatch metrics
        broker_name=f"{pulumi.get_project()}-{pulumi.get_stack()}-{name}"[:50],
        engine_type="RabbitMQ",
        engine_version=a["amazon_mq_engine_version"],
        host_instance_type=a["amazon_mq_instance_type"],
        deployment_mode=str(a["amazon_mq_deployment_mode"]),
        publicly_accessible=False,
        # A single instance lives in one subnet; a cluster spreads its three nodes over the AZs.
        subnet_ids=network.apply(lambda n: n["instance_subnet_ids"][:1] if single else n["instance_subnet_ids"]),
        security_groups=[group],
        users=[aws.mq.BrokerUserArgs(username=user, password=pulumi.Output.secret(password))],
        auto_minor_version_upgrade=True,
        logs=aws.mq.BrokerLogsArgs(general=True),
        tags=name_tags(a["tags"], f"{name}-broker"),
        opts=child,
    )


def endpoint(mq: aws.mq.Broker) -> pulumi.Output[str]:
    """The broker's ``amqps://`` endpoint."""
    return mq.instances.apply(lambda instances: instances[0].endpoints[0])
