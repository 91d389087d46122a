"""ConsulMesh: Consul servers, a client agent on every ECS instance, and the registrar sidecar."""

import json
from typing import Any, Required, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from . import iam, instances
from . import validation as check
from .images import pinned_image
from .secrets import StoredSecret
from .service import Container, ContainerService
from .tagging import name_tags

# Bridge-mode containers reach the agent on their own host through the docker0 gateway,
# 172.17.0.1 on the ECS-optimized Amazon Linux 2023 AMI. Containers get it as a host name
# (an /etc/hosts entry from the task definition), so apps are configured with a name,
# CONSUL_HTTP_ADDR=consul-agent:8500, and no address appears in any environment or image.
AGENT_HOSTNAME = "consul-agent"
AGENT_HOST_IP = "172.17.0.1"
AGENT_HOSTS = {AGENT_HOSTNAME: AGENT_HOST_IP}
AGENT_ADDRESS = f"{AGENT_HOSTNAME}:8500"
SERVER_AMI_PARAMETERS = {
    "x86_64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "arm64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
}
HASHICORP_REPO = "https://rpm.releases.hashicorp.com/AmazonLinux/hashicorp.repo"
JOIN_TAG_KEY = "seaport-consul-join"
# Gossip and RPC bind to the IPv4 address of the interface with the default route (the ENI): an
# ECS instance has more private addresses (docker0), and Consul refuses to guess between them.
BIND_ADDRESS = '{{ GetDefaultInterfaces | include "type" "IPv4" | limit 1 | attr "address" }}'
# (port, protocol, purpose): what the servers admit from the cluster and from each other.
SERVER_PORTS = [
    (8300, "tcp", "server RPC"),
    (8301, "tcp", "LAN gossip"),
    (8301, "udp", "LAN gossip"),
    (8500, "tcp", "HTTP API and UI"),
    (8600, "tcp", "DNS"),
    (8600, "udp", "DNS"),
]
# Client agents on the ECS instances serve only LAN gossip to others; their HTTP API is local.
AGENT_PORTS = [(8301, "tcp", "LAN gossip"), (8301, "udp", "LAN gossip")]

# ACL policies (Consul accepts rules as JSON). Default policy is deny: each token gets only these.
ACL_POLICIES: dict[str, dict[str, Any]] = {
    # agents register their node and read the catalog
    "agent": {"node_prefix": {"": {"policy": "write"}}, "service_prefix": {"": {"policy": "read"}}},
    # the registrar sidecar registers and deregisters services
    "registrar": {"service_prefix": {"": {"policy": "write"}}, "node_prefix": {"": {"policy": "read"}}},
    # apps look services up
    "reader": {"service_prefix": {"": {"policy": "read"}}, "node_prefix": {"": {"policy": "read"}}},
}


class ConsulMeshArgs(TypedDict, total=False):
    vpc_id: Required[pulumi.Input[str]]
    """VPC of the servers. Required."""
    subnet_ids: Required[pulumi.Input[list[str]]]
    """Subnets for the servers (2+ AZs; the cluster's instance subnets). Required."""
    cluster_arn: Required[pulumi.Input[str]]
    """ECS cluster that runs a client agent on every instance. Required."""
    instance_security_group_id: Required[pulumi.Input[str]]
    """Security group of the cluster's instances. Required."""
    registrar_image: Required[pulumi.Input[str]]
    """Image of the registrar sidecar (by digest). Required."""
    server_count: int
    """Consul servers: 1 (no fault tolerance), 3 or 5. Default ``3``."""
    consul_version: str
    """Pinned Consul release for servers (official package) and agents (official image). Default ``1.21.5``."""
    server_instance_type: str
    """Instance type of the servers. Default ``t3.micro``."""
    agent_image: pulumi.Input[str]
    """Client agent image. Default: ``hashicorp/consul:<consul_version>`` resolved to its digest."""
    datacenter: str
    """Consul datacenter name. Default ``dc1``."""
    public_ip: bool
    """Give servers a public IPv4 address (public subnets without NAT). Default ``False``."""
    log_retention_days: int
    """CloudWatch Logs retention of the agents' logs. Default ``30``."""
    tags: dict[str, str]
    """Tags added to every resource. Default ``{}``."""


class ConsulMesh(pulumi.ComponentResource):
    """Consul service discovery for an ECS cluster, with ACLs and gossip encryption on.

    Servers run the pinned official release on their own Auto Scaling group
    and find each other by cloud auto-join on an EC2 tag. A client agent runs
    on every ECS instance as a DAEMON service in host network mode; containers
    in bridge mode reach it at ``agent_address``. The gossip key and the ACL
    tokens are generated once and kept in Secrets Manager; ACLs deny by
    default and each token (agent, registrar, reader) gets only its policy.
    ``registrar(...)`` returns the sidecar that makes a container discoverable.
    """

    agent_address: pulumi.Output[str]
    """``consul-agent:8500``: the local agent as bridge-mode containers see it (their ``CONSUL_HTTP_ADDR``)."""
    agent_hosts: pulumi.Output[dict[str, str]]
    """The /etc/hosts entry that makes ``consul-agent`` the container's host (a container's ``extra_hosts``)."""
    server_security_group_id: pulumi.Output[str]
    """Security group of the servers."""
    server_autoscaling_group_name: pulumi.Output[str]
    """Auto Scaling group of the servers."""
    gossip_key_secret_arn: pulumi.Output[str]
    """Secrets Manager ARN of the gossip encryption key."""
    reader_token_secret_arn: pulumi.Output[str]
    """Secrets Manager ARN of the ACL token that may look services up (give it to apps as CONSUL_HTTP_TOKEN)."""
    registrar_token_secret_arn: pulumi.Output[str]
    """Secrets Manager ARN of the ACL token that may register services."""
    ui_url: pulumi.Output[str]
    """Private URL of the Consul UI (an internal load balancer; reach it from inside the VPC)."""

    def __init__(self, name: str, args: ConsulMeshArgs, opts: pulumi.ResourceOptions | None = None):
        validate_consul_args(args)  # before anything is registered
        super().__init__("seaport:index:ConsulMesh", name, None, opts)
        tags = args.get("tags", {})
        child = pulumi.ResourceOptions(parent=self)
        version = args.get("consul_version", "1.21.5")
        count = args.get("server_count", 3)
        datacenter = args.get("datacenter", "dc1")
        join_value = f"{pulumi.get_project()}-{pulumi.get_stack()}-{name}"
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        # Cloud auto-join: every agent finds the servers by this tag through ec2:DescribeInstances.
        retry_join = region.apply(lambda r: [f"provider=aws region={r} tag_key={JOIN_TAG_KEY} tag_value={join_value}"])
        cluster_group = args["instance_security_group_id"]

        # -- generated secrets -------------------------------------------------------------
        gossip = random.RandomBytes(f"{name}-gossip-key", length=32, opts=child)
        secrets = {
            "gossip": StoredSecret(f"{name}-gossip-key", gossip.base64, "Consul gossip encryption key", tags, child)
        }
        for token in ("management", "agent", "registrar", "reader"):
            value = random.RandomUuid4(f"{name}-{token}-token", opts=child).result
            secrets[token] = StoredSecret(f"{name}-{token}-token", value, f"Consul ACL {token} token", tags, child)

        # -- servers ---------------------------------------------------------------------------
        server_group = instances.outbound_only_security_group(
            f"{name}-servers", args["vpc_id"], f"Consul servers of {name}", tags, child
        )
        self._admit(
            f"{name}-servers", server_group.id, SERVER_PORTS, {"servers": server_group.id, "cluster": cluster_group}
        )
        self._admit(
            f"{name}-agents", cluster_group, AGENT_PORTS, {"servers": server_group.id, "cluster": cluster_group}
        )

        role, profile = instances.instance_role(f"{name}-server", [iam.SSM_INSTANCE_POLICY], tags, child)
        aws.iam.RolePolicy(
            f"{name}-server",
            role=role.name,
            policy=iam.policy_document(
                [
                    # cloud auto-join lists instances by tag; the action can't be scoped to resources
                    iam.statement(["ec2:DescribeInstances"], ["*"]),
                    iam.statement(["secretsmanager:GetSecretValue"], [s.arn for s in secrets.values()]),
                ]
            ),
            opts=child,
        )
        instance_type = args.get("server_instance_type", "t3.micro")
        ami = aws.ssm.get_parameter_output(
            name=SERVER_AMI_PARAMETERS[check.instance_architecture(instance_type)],
            opts=pulumi.InvokeOutputOptions(parent=self),
        ).value
        script = pulumi.Output.all(retry_join, {k: s.arn for k, s in secrets.items()}).apply(
            lambda v: server_user_data(version, server_config(count, datacenter, v[0]), v[1])
        )
        template = instances.hardened_launch_template(
            f"{name}-server",
            image_id=ami,
            instance_type=instance_type,
            profile_arn=profile.arn,
            security_group_id=server_group.id,
            user_data=script,
            volume_gib=20,
            public_ip=args.get("public_ip", False),
            tags=tags,
            opts=child,
        )
        ui_target_group = self._ui(name, args, server_group.id, cluster_group, tags, child)
        servers = aws.autoscaling.Group(
            f"{name}-servers",
            min_size=count,
            max_size=count,
            desired_capacity=count,
            vpc_zone_identifiers=args["subnet_ids"],
            launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            target_group_arns=[ui_target_group.arn],
            health_check_type="EC2",
            tags=[
                aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=True)
                for key, value in {**name_tags(tags, f"{name}-server"), JOIN_TAG_KEY: join_value}.items()
            ],
            opts=child,
        )

        # -- a client agent on every ECS instance ---------------------------------------------------
        agent_image = args.get("agent_image") or pinned_image(
            f"hashicorp/consul:{version}", opts=pulumi.InvokeOutputOptions(parent=self)
        )
        ContainerService(
            f"{name}-agent",
            {
                "cluster_arn": args["cluster_arn"],
                "scheduling": "DAEMON",
                "network_mode": "host",
                "container": {
                    "name": "consul-agent",
                    "image": agent_image,
                    "cpu": 64,
                    "memory_mib": 128,
                    "read_only_root_filesystem": False,  # the image's entry point writes its config
                    "environment": {
                        "CONSUL_LOCAL_CONFIG": retry_join.apply(lambda j: json.dumps(agent_config(datacenter, j)))
                    },
                    "secrets": {
                        "CONSUL_GOSSIP_ENCRYPTION": secrets["gossip"].arn,
                        "CONSUL_AGENT_ACL": secrets["agent"].arn,
                    },
                    "command": AGENT_COMMAND,
                    "mount_points": [{"source_volume": "consul-data", "container_path": "/consul/data"}],
                    "health_check": {
                        "command": ["CMD", "curl", "-sf", "http://127.0.0.1:8500/v1/status/leader"],
                        "start_period_seconds": 60,
                    },
                },
                "volumes": [{"name": "consul-data", "host_path": "/var/lib/consul-agent"}],
                # go-discover (cloud auto-join) lists instances with the task role's credentials.
                "task_role_statements": [iam.statement(["ec2:DescribeInstances"], ["*"])],
                "log_retention_days": args.get("log_retention_days", 30),
                "tags": tags,
            },
            opts=child,
        )

        self._registrar_image = args["registrar_image"]
        self.agent_address = pulumi.Output.from_input(AGENT_ADDRESS)
        self.agent_hosts = pulumi.Output.from_input(AGENT_HOSTS)
        self.server_security_group_id = server_group.id
        self.server_autoscaling_group_name = servers.name
        self.gossip_key_secret_arn = secrets["gossip"].arn
        self.reader_token_secret_arn = secrets["reader"].arn
        self.registrar_token_secret_arn = secrets["registrar"].arn
        self.register_outputs(
            {
                "agent_address": self.agent_address,
                "agent_hosts": self.agent_hosts,
                "server_security_group_id": self.server_security_group_id,
                "server_autoscaling_group_name": self.server_autoscaling_group_name,
                "gossip_key_secret_arn": self.gossip_key_secret_arn,
                "reader_token_secret_arn": self.reader_token_secret_arn,
                "registrar_token_secret_arn": self.registrar_token_secret_arn,
                "ui_url": self.ui_url,
            }
        )

    def registrar(self, service: str, container: str, port: int, check: str = "http:/health") -> Container:
        """The sidecar that registers ``container``'s dynamic host port for ``port`` as Consul service ``service``.

        Add it to any ContainerService's ``sidecars`` to make that container
        discoverable; ``check`` is ``http:<path>`` or ``tcp``.
        """
        return {
            "name": f"{container}-registrar",
            "image": self._registrar_image,
            # A task nobody can find serves no one: if the registrar gives up, ECS replaces the task.
            "essential": True,
            "cpu": 32,
            "memory_mib": 64,
            "environment": {
                "REGISTRAR_SERVICE": service,
                "REGISTRAR_CONTAINER": container,
                "REGISTRAR_CONTAINER_PORT": str(port),
                "REGISTRAR_CHECK": check,
                "CONSUL_HTTP_ADDR": AGENT_ADDRESS,
            },
            "secrets": {"CONSUL_HTTP_TOKEN": self.registrar_token_secret_arn},
            "extra_hosts": dict(AGENT_HOSTS),
            "depends_on": {container: "START"},
        }

    def _admit(
        self,
        name: str,
        group_id: pulumi.Input[str],
        ports: list[tuple[int, str, str]],
        sources: dict[str, pulumi.Input[str]],
    ) -> None:
        """Ingress rules on ``group_id`` for each port, from each named source group only."""
        for port, protocol, purpose in ports:
            for source, source_id in sources.items():
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-{port}-{protocol}-from-{source}",
                    security_group_id=group_id,
                    referenced_security_group_id=source_id,
                    ip_protocol=protocol,
                    from_port=port,
                    to_port=port,
                    description=f"Consul {purpose} from the {source}",
                    opts=pulumi.ResourceOptions(parent=self),
                )

    def _ui(
        self,
        name: str,
        args: ConsulMeshArgs,
        server_group: pulumi.Input[str],
        cluster_group: pulumi.Input[str],
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> aws.lb.TargetGroup:
        """An internal load balancer in front of the servers' UI, reachable from inside the VPC only."""
        ui_group = instances.security_group(
            f"{name}-ui", args["vpc_id"], f"internal Consul UI load balancer of {name}", tags, child
        )
        for source, source_id in (("cluster", cluster_group), ("servers", server_group)):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-ui-80-from-{source}",
                security_group_id=ui_group.id,
                referenced_security_group_id=source_id,
                ip_protocol="tcp",
                from_port=80,
                to_port=80,
                description=f"Consul UI from the {source} (e.g. an SSM port forward through an instance)",
                opts=child,
            )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-ui-to-servers",
            security_group_id=ui_group.id,
            referenced_security_group_id=server_group,
            ip_protocol="tcp",
            from_port=8500,
            to_port=8500,
            description="to the servers' HTTP API",
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-servers-8500-from-ui",
            security_group_id=server_group,
            referenced_security_group_id=ui_group.id,
            ip_protocol="tcp",
            from_port=8500,
            to_port=8500,
            description="Consul HTTP API from the internal UI load balancer",
            opts=child,
        )
        balancer = aws.lb.LoadBalancer(
            f"{name}-ui",
            load_balancer_type="application",
            internal=True,
            security_groups=[ui_group.id],
            subnets=args["subnet_ids"],
            drop_invalid_header_fields=True,
            tags=name_tags(tags, f"{name}-ui"),
            opts=child,
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-ui",
            vpc_id=args["vpc_id"],
            target_type="instance",
            protocol="HTTP",
            port=8500,
            deregistration_delay=30,
            health_check=aws.lb.TargetGroupHealthCheckArgs(path="/v1/status/leader", matcher="200"),
            tags=name_tags(tags, f"{name}-ui"),
            opts=child,
        )
        aws.lb.Listener(
            f"{name}-ui",
            load_balancer_arn=balancer.arn,
            port=80,
            protocol="HTTP",
            default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)],
            tags=tags,
            opts=child,
        )
        self.ui_url = balancer.dns_name.apply(lambda dns: f"http://{dns}/ui/")
        return target_group


# -- configuration as data ------------------------------------------------------------------


def server_config(count: int, datacenter: str, retry_join: list[str]) -> dict[str, Any]:
    """The servers' consul.json (the secrets go in a separate file written at boot)."""
    return {
        "datacenter": datacenter,
        "server": True,
        "bootstrap_expect": count,
        "data_dir": "/opt/consul",
        "retry_join": retry_join,
        "bind_addr": BIND_ADDRESS,
        # Agents, the UI load balancer and DNS clients connect; security groups and ACLs decide who may.
        "client_addr": "0.0.0.0",  # noqa: S104
        "ui_config": {"enabled": True},
        "acl": {"enabled": True, "default_policy": "deny", "enable_token_persistence": True},
        "autopilot": {"cleanup_dead_servers": True},
        "performance": {"raft_multiplier": 1},
        "disable_update_check": True,
        "log_level": "INFO",
    }


def agent_config(datacenter: str, retry_join: list[str]) -> dict[str, Any]:
    """The client agents' configuration (CONSUL_LOCAL_CONFIG of the official image)."""
    return {
        "datacenter": datacenter,
        "server": False,
        "retry_join": retry_join,
        "bind_addr": BIND_ADDRESS,
        # The HTTP API listens on loopback (the instance) and docker0 (bridge-mode containers), chosen by
        # interface name with a go-sockaddr template; nothing else on the network can reach it.
        "client_addr": '{{ GetAllInterfaces | include "name" "^(lo|docker0)$" | include "type" "IPv4" '
        '| join "address" " " }}',
        "acl": {"enabled": True, "default_policy": "deny", "enable_token_persistence": True},
        "leave_on_terminate": True,
        "disable_update_check": True,
        "log_level": "INFO",
    }


# The official image's entry point reads CONSUL_LOCAL_CONFIG; the two secrets arrive as
# environment variables (ECS secrets) and are written to a file the agent reads, never logged.
AGENT_COMMAND = [
    "/bin/sh",
    "-c",
    'printf \'{"encrypt": "%s", "acl": {"tokens": {"agent": "%s"}}}\' '
    '"$CONSUL_GOSSIP_ENCRYPTION" "$CONSUL_AGENT_ACL" > /consul/config/secrets.json '
    "&& exec docker-entrypoint.sh agent",
]


def server_user_data(version: str, config: dict[str, Any], secret_arns: dict[str, str]) -> str:
    """The servers' boot script: install the pinned release, configure, start, create ACL tokens."""
    policies = "\n".join(
        f"cat > /etc/consul.d/acl/{policy}.json <<'RULES'\n{json.dumps(rules, indent=2)}\nRULES\n"
        f'ensure_token {policy} "$(secret {secret_arns[policy]})"'
        for policy, rules in ACL_POLICIES.items()
    )
    return f"""#!/bin/bash
# Consul server: the pinned official release from HashiCorp's signed package repository,
# configuration written from JSON rendered by Python, secrets read from Secrets Manager at boot.
set -euo pipefail

CONSUL_VERSION="{version}"
dnf install -y dnf-plugins-core jq
dnf config-manager --add-repo {HASHICORP_REPO}
dnf install -y "consul-$CONSUL_VERSION"

secret() {{
  aws secretsmanager get-secret-value --secret-id "$1" --query SecretString --output text
}}

install -d -o consul -g consul -m 0750 /opt/consul /etc/consul.d /etc/consul.d/acl
rm -f /etc/consul.d/consul.hcl
cat > /etc/consul.d/consul.json <<'CONFIG'
{json.dumps(config, indent=2)}
CONFIG
jq -n \\
  --arg encrypt "$(secret {secret_arns["gossip"]})" \\
  --arg management "$(secret {secret_arns["management"]})" \\
  --arg agent "$(secret {secret_arns["agent"]})" \\
  '{{encrypt: $encrypt, acl: {{tokens: {{initial_management: $management, agent: $agent}}}}}}' \\
  > /etc/consul.d/secrets.json
chown consul:consul /etc/consul.d/*.json
chmod 0640 /etc/consul.d/*.json
systemctl enable --now consul

# ACL policies and tokens with the secret ids generated by the program. Idempotent: every
# server runs this once a leader is elected; whichever comes first creates them.
CONSUL_HTTP_TOKEN="$(secret {secret_arns["management"]})"
export CONSUL_HTTP_TOKEN
until [ "$(curl -s http://127.0.0.1:8500/v1/status/leader)" != '""' ] && consul members >/dev/null 2>&1; do
  sleep 5
done

ensure_token() {{
  local policy="$1" token="$2"
  consul acl policy read -name "$policy" >/dev/null 2>&1 \\
    || consul acl policy create -name "$policy" -rules "@/etc/consul.d/acl/$policy.json" >/dev/null \\
    || consul acl policy read -name "$policy" >/dev/null
  CONSUL_HTTP_TOKEN="$token" consul acl token read -self >/dev/null 2>&1 \\
    || consul acl token create -secret "$token" -policy-name "$policy" -description "seaport $policy" >/dev/null \\
    || CONSUL_HTTP_TOKEN="$token" consul acl token read -self >/dev/null
}}

{policies}
"""


def validate_consul_args(args: ConsulMeshArgs) -> None:
    """Raise InvalidArgument naming the first bad argument."""
    for key in ("vpc_id", "subnet_ids", "cluster_arn", "instance_security_group_id", "registrar_image"):
        if args.get(key) is None:
            raise check.InvalidArgument(f"{key} is required")
    count = args.get("server_count", 3)
    check.require(check.one_of(count, (1, 3, 5)), "server_count", count)
    version = args.get("consul_version", "1.21.5")
    check.require(check.semver(version), "consul_version", version)
    instance_type = args.get("server_instance_type", "t3.micro")
    check.require(check.instance_type(instance_type), "server_instance_type", instance_type)
    retention = args.get("log_retention_days", 30)
    check.require(check.log_retention(retention), "log_retention_days", retention)
    check.require(check.tags(args.get("tags", {})), "tags", args.get("tags", {}))
