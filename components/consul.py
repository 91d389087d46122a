"""ConsulMesh: Consul servers, a client agent on every ECS instance, and the discovery reference tasks use."""

import json
from typing import Any, Required, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from . import consul_config as cfg
from . import iam, instances, outputs, references
from . import validation as check
from .args import Problem, Problems, raise_if, with_defaults
from .discovery import AGENT_ADDRESS, AGENT_HOSTS
from .images import pinned_image
from .pki import CertificateAuthorityReference, issue
from .references import ClusterReference, DiscoveryReference, get
from .secrets import StoredSecret
from .security_groups import admit, outbound_only_security_group
from .service import ContainerService
from .tagging import name_tags

SERVER_AMI_PARAMETERS = {
    "x86_64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "arm64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
}
TOKENS = ("management", "agent", "registrar", "reader", "broker")
# HashiCorp's official image on ECR Public: no Docker Hub anonymous pull limit for new instances.
AGENT_IMAGE = "public.ecr.aws/hashicorp/consul"

DEFAULTS: dict[str, Any] = {
    "servers": 3,
    "version": "1.22.7",
    "instance_type": "t3.micro",
    "datacenter": "dc1",
    "log_retention_days": 30,
    "tags": {},
}


class ConsulMeshArgs(TypedDict, total=False):
    cluster: Required[pulumi.Input[ClusterReference]]
    """The ECS cluster (``EcsCluster.reference``): an agent runs on each of its instances, and the servers go
    in its VPC and instance subnets. Required."""
    registrar_image: Required[pulumi.Input[str]]
    """Image of the registrar sidecar, by digest. Required."""
    ca: Required[pulumi.Input[CertificateAuthorityReference]]
    """The internal CA (``CertificateAuthority.reference``): it signs the servers' certificate; RPC between
    agents and servers is TLS verified both ways, agents get their certificates by auto-encrypt. Required."""
    servers: int
    """Consul servers: 1 (no fault tolerance), 3 or 5. Default ``3``."""
    version: str
    """Pinned Consul release for the servers (official package) and the agents (official image). Default
    ``"1.22.7"``."""
    instance_type: str
    """EC2 instance type of the servers. Default ``"t3.micro"``."""
    agent_image: pulumi.Input[str]
    """Client agent image. Default: the official image of ``version`` from its ECR Public mirror
    (``public.ecr.aws/hashicorp/consul:<version>``), resolved to its digest."""
    datacenter: str
    """Consul datacenter name. Default ``"dc1"``."""
    log_retention_days: int
    """CloudWatch Logs retention of the agents' logs. Default ``30``."""
    tags: dict[str, str]
    """Tags added to every resource. Default ``{}``."""


class ConsulMesh(pulumi.ComponentResource):
    """Consul service discovery for an ECS cluster, with ACLs and gossip encryption on.

    Servers run the pinned official release on their own Auto Scaling group
    and find each other by cloud auto-join on an EC2 tag. A client agent runs
    on every ECS instance as a DAEMON service in host network mode. The gossip
    key and the ACL tokens are generated once and kept in Secrets Manager; ACLs
    deny by default and each token (agent, registrar, reader) gets only its
    policy. Pass ``discovery`` to a ContainerService (or ScaledWebService,
    RabbitMessaging) to let its tasks look services up and register themselves.
    """

    discovery: pulumi.Output[DiscoveryReference]
    """What tasks need to use Consul: pass it as ``discovery`` to the other components."""
    server_security_group_id: pulumi.Output[str]
    """Security group of the servers."""
    server_autoscaling_group_name: pulumi.Output[str]
    """Auto Scaling group of the servers."""
    agent_service_name: pulumi.Output[str]
    """The agents' DAEMON service."""
    gossip_key_secret_arn: pulumi.Output[str]
    """Secrets Manager ARN of the gossip encryption key."""
    management_token_secret_arn: pulumi.Output[str]
    """Secrets Manager ARN of the management token (operators: the UI and the CLI)."""
    ui_port: pulumi.Output[int]
    """The servers' HTTPS API and UI port (8501): reach it on a server through an SSM port forward (README)."""

    def __init__(self, name: str, args: ConsulMeshArgs, opts: pulumi.ResourceOptions | None = None):
        raise_if(problems(args))  # before anything is registered
        super().__init__("seaport:index:ConsulMesh", name, None, opts)
        a = with_defaults(args, DEFAULTS)
        child = pulumi.ResourceOptions(parent=self)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        join_value = f"{pulumi.get_project()}-{pulumi.get_stack()}-{name}"
        retry_join = region.apply(lambda r: cfg.auto_join(r, join_value))

        gossip = random.RandomBytes(f"{name}-gossip-key", length=32, opts=child)
        secrets = {
            "gossip": StoredSecret(
                f"{name}-gossip-key", gossip.base64, "Consul gossip encryption key", a["tags"], child
            )
        }
        for token in TOKENS:
            # Consul wants UUIDs; RandomUuid4 keeps its value in clear (it is the id), RandomBytes is secret.
            raw = random.RandomBytes(f"{name}-{token}-token", length=16, opts=child)
            value = raw.hex.apply(cfg.uuid4)
            secrets[token] = StoredSecret(f"{name}-{token}-token", value, f"Consul ACL {token} token", a["tags"], child)

        # One certificate for every server: clients verify the name server.<datacenter>.consul, not an address.
        server_tls = issue(
            f"{name}-server-tls",
            a["ca"],
            f"server.{a['datacenter']}.consul",
            [f"server.{a['datacenter']}.consul", "localhost"],
            ["127.0.0.1"],
            a["tags"],
            self,
        )
        secrets["server_key"] = server_tls.key
        tls_files = pulumi.Output.all(get(a["ca"], "certificate_pem"), server_tls.certificate_pem).apply(
            lambda pems: {"ca": pems[0], "certificate": pems[1]}
        )
        server_group, servers = self._servers(name, a, retry_join, join_value, secrets, tls_files)
        agents = self._agents(name, a, retry_join, secrets)

        outputs.register(
            self,
            # a dict of outputs; other languages see an object
            discovery={
                "agent_address": AGENT_ADDRESS,
                "agent_hosts": AGENT_HOSTS,
                "reader_token_secret_arn": secrets["reader"].arn,
                "registrar_image": a["registrar_image"],
                "registrar_token_secret_arn": secrets["registrar"].arn,
                "broker_token_secret_arn": secrets["broker"].arn,
            },
            server_security_group_id=server_group,
            server_autoscaling_group_name=servers.name,
            agent_service_name=agents.service_name,
            gossip_key_secret_arn=secrets["gossip"].arn,
            management_token_secret_arn=secrets["management"].arn,
            ui_port=pulumi.Output.from_input(cfg.HTTPS_PORT),
        )

    def _servers(
        self,
        name: str,
        a: dict[str, Any],
        retry_join: pulumi.Output[list[str]],
        join_value: str,
        secrets: dict[str, StoredSecret],
        tls_files: pulumi.Output[dict[str, str]],
    ) -> tuple[pulumi.Output[str], aws.autoscaling.Group]:
        """The servers: security group rules, role, hardened launch template, Auto Scaling group."""
        child = pulumi.ResourceOptions(parent=self)
        cluster, tags = a["cluster"], a["tags"]
        network = get(cluster, "network")
        cluster_group = get(cluster, "instance_security_group_id")
        group = outbound_only_security_group(
            f"{name}-servers", network.apply(lambda n: n["vpc_id"]), f"Consul servers of {name}", tags, child
        ).id
        peers = {"servers": group, "cluster": cluster_group}
        admit(f"{name}-servers", group, cfg.SERVER_PORTS, peers, child)
        admit(f"{name}-servers", group, cfg.SERVER_TO_SERVER_PORTS, {"servers": group}, child)
        admit(f"{name}-agents", cluster_group, cfg.AGENT_PORTS, peers, child)

        role, profile = instances.instance_role(f"{name}-server", [iam.SSM_INSTANCE_POLICY], tags, child)
        statements = [
            # cloud auto-join lists instances by tag; the action can't be scoped to resources
            iam.statement(["ec2:DescribeInstances"], ["*"]),
            iam.statement(["secretsmanager:GetSecretValue"], [s.arn for s in secrets.values()]),
        ]
        aws.iam.RolePolicy(f"{name}-server", role=role.name, policy=iam.policy_document(statements), opts=child)
        template = self._launch_template(name, a, retry_join, secrets, tls_files, group, profile.arn, network)
        servers = aws.autoscaling.Group(
            f"{name}-servers",
            min_size=a["servers"],
            max_size=a["servers"],
            desired_capacity=a["servers"],
            vpc_zone_identifiers=network.apply(lambda n: n["instance_subnet_ids"]),
            launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            health_check_type="EC2",
            # the servers-in-service alarm reads these (Auto Scaling publishes group metrics only when asked)
            enabled_metrics=["GroupInServiceInstances", "GroupDesiredCapacity"],
            tags=[
                aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=True)
                for key, value in {**name_tags(tags, f"{name}-server"), cfg.JOIN_TAG_KEY: join_value}.items()
            ],
            opts=child,
        )
        return group, servers

    def _launch_template(
        self,
        name: str,
        a: dict[str, Any],
        retry_join: pulumi.Output[list[str]],
        secrets: dict[str, StoredSecret],
        tls_files: pulumi.Output[dict[str, str]],
        group: pulumi.Output[str],
        profile_arn: pulumi.Output[str],
        network: pulumi.Output[Any],
    ) -> aws.ec2.LaunchTemplate:
        """The servers' hardened launch template with the boot script rendered from the template file."""
        ami = pulumi.Output.unsecret(
            aws.ssm.get_parameter_output(
                name=SERVER_AMI_PARAMETERS[check.instance_architecture(a["instance_type"])],
                opts=pulumi.InvokeOutputOptions(parent=self),
            ).insecure_value
        )
        config = retry_join.apply(lambda join: cfg.server_config(a["servers"], a["datacenter"], join))
        script = pulumi.Output.all(config, {k: s.arn for k, s in secrets.items()}, tls_files).apply(
            lambda v: cfg.server_user_data(a["version"], v[0], v[1], v[2])
        )
        return instances.hardened_launch_template(
            f"{name}-server",
            image_id=ami,
            instance_type=a["instance_type"],
            profile_arn=profile_arn,
            security_group_id=group,
            user_data=script,
            volume_gib=20,
            public_ip=network.apply(lambda n: n["instances_need_public_ip"]),
            tags=a["tags"],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _agents(
        self, name: str, a: dict[str, Any], retry_join: pulumi.Output[list[str]], secrets: dict[str, StoredSecret]
    ) -> ContainerService:
        """A client agent on every ECS instance (DAEMON, host network)."""
        image = a.get("agent_image") or pinned_image(
            f"{AGENT_IMAGE}:{a['version']}", opts=pulumi.InvokeOutputOptions(parent=self)
        )
        agent_config = retry_join.apply(lambda join: json.dumps(cfg.agent_config(a["datacenter"], join)))
        return ContainerService(
            f"{name}-agent",
            {
                "cluster": a["cluster"],
                "scheduling": "DAEMON",
                "network_mode": "host",
                "container": {
                    "name": "consul-agent",
                    "image": image,
                    "cpu": 64,
                    "memory_mib": 128,
                    # The entry point and the command write the configuration into a tmpfs; nothing else.
                    "tmpfs": [cfg.AGENT_CONFIG_DIR],
                    "environment": {
                        "CONSUL_UID": str(cfg.AGENT_UID),
                        "CONSUL_LOCAL_CONFIG": agent_config,
                        cfg.CA_VARIABLE: get(a["ca"], "certificate_pem"),
                    },
                    "secrets": {
                        "CONSUL_GOSSIP_ENCRYPTION": secrets["gossip"].arn,
                        "CONSUL_AGENT_ACL": secrets["agent"].arn,
                    },
                    "command": cfg.AGENT_COMMAND,
                    "mount_points": [{"source_volume": "consul-data", "container_path": "/consul/data"}],
                    "health_check": {"command": cfg.AGENT_HEALTH_CHECK, "start_period_seconds": 60},
                },
                "volumes": [{"name": "consul-data", "host_path": "/var/lib/consul-agent"}],
                # go-discover (cloud auto-join) lists instances with the task role's credentials.
                "task_role_statements": [iam.statement(["ec2:DescribeInstances"], ["*"])],
                "log_retention_days": a["log_retention_days"],
                "tags": a["tags"],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )


def problems(args: ConsulMeshArgs) -> list[Problem]:
    a = with_defaults(args, DEFAULTS)
    found = Problems()
    found.require(a, "cluster", "registrar_image", "ca")
    found.extend_under("cluster", references.problems(a.get("cluster"), ClusterReference))
    found.check("servers", a["servers"], check.one_of(a["servers"], (1, 3, 5)))
    found.check("version", a["version"], check.semver(a["version"]))
    found.check("instance_type", a["instance_type"], check.instance_type(a["instance_type"]))
    found.check("log_retention_days", a["log_retention_days"], check.log_retention(a["log_retention_days"]))
    found.check("tags", a["tags"], check.tags(a["tags"]))
    return found
