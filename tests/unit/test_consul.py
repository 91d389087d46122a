"""ConsulMesh: servers, ACL tokens, gossip key, security groups, agent daemon, registrar sidecar.

Expectations are literal values, never the function that produced them: the servers' settings, the ACL
rules and the agents' configuration are read back from what the plan would deploy (the launch
template's decoded user data and the task definitions) and compared with what they must be.
"""

import base64
import json

import pytest

from seaport import ConsulMesh, ContainerService, InvalidArgument
from seaport import consul_config as cfg
from seaport.cluster import DEFAULTS as CLUSTER_DEFAULTS
from seaport.tools.mocks import SeaportMocks
from seaport.tools.testing import run
from tests.unit.references import CA, CA_CERT, CLUSTER, INSTANCE_SG, PRIVATE_SUBNETS, REGISTRAR_IMAGE

MESH = "seaport:index:ConsulMesh"
JOIN = "provider=aws region=us-east-1 tag_key=seaport-consul-join tag_value=seaport-test-consul"
BIND_ADDRESS = '{{ GetDefaultInterfaces | include "type" "IPv4" | limit 1 | attr "address" }}'
TOKENS = ("management", "agent", "registrar", "reader", "broker")
# Resources whose outputs are generated credentials, and those outputs (what a leak would look like).
GENERATED = {
    "random:index/randomPassword:RandomPassword": ("result", "bcryptHash"),
    "random:index/randomBytes:RandomBytes": ("base64", "hex"),
    "random:index/randomUuid4:RandomUuid4": ("result",),
    "random:index/randomUuid:RandomUuid": ("result",),
    "random:index/randomString:RandomString": ("result",),
}
# Consul ACL resources an application token must never write (or list): key/value data, ACLs,
# operator and keyring state, agents, events, prepared queries, sessions, mesh and peering config.
SENSITIVE_RESOURCES = {
    "key",
    "key_prefix",
    "acl",
    "operator",
    "keyring",
    "agent",
    "agent_prefix",
    "event",
    "event_prefix",
    "query",
    "query_prefix",
    "session",
    "session_prefix",
    "mesh",
    "peering",
}


class RecordingMocks(SeaportMocks):
    """seaport's mocks, also keeping every generated credential value (the plan shows "[secret]")."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.generated: dict[str, str] = {}  # "<resource name>.<output>" -> value
        self.secret_strings: dict[str, str] = {}  # secret version name -> the value stored (in clear)
        self.registered: list[str] = []

    def new_resource(self, args):
        resource_id, outputs = super().new_resource(args)
        self.registered.append(args.name)
        if args.typ == "aws:secretsmanager/secretVersion:SecretVersion":
            value = args.inputs.get("secretString")
            self.secret_strings[args.name] = value["value"] if isinstance(value, dict) else value
        for key in GENERATED.get(args.typ, ()):
            if outputs.get(key):
                self.generated[f"{args.name}.{key}"] = str(outputs[key])
        return resource_id, outputs


def user_data(plan):
    """The Consul servers' boot script, decoded from the launch template."""
    template = plan.within(MESH, "aws:ec2/launchTemplate:LaunchTemplate")
    return base64.b64decode(template["inputs"]["userData"]).decode()


def server_data(plan):
    """The JSON document the boot script reads (the SEAPORT_DATA heredoc of the user data)."""
    script = user_data(plan)
    marker = "cat > /etc/seaport/consul-server.json <<'SEAPORT_DATA'\n"
    assert script.count(marker) == 1, "the user data writes its data document once"
    return json.loads(script.split(marker, 1)[1].split("\nSEAPORT_DATA\n", 1)[0])


def grants(rules):
    """(resource, prefix, right) for every rule of a Consul ACL policy written as JSON.

    Resources with segments look like ``{"service_prefix": {"": {"policy": "read"}}}``; the others
    (acl, operator, keyring, mesh, peering) like ``{"operator": "read"}``."""
    for resource, value in rules.items():
        if isinstance(value, str):
            yield resource, None, value
            continue
        for segment, rule in value.items():
            yield resource, segment, rule.get("policy")
            if rule.get("intentions"):
                yield f"{resource}.intentions", segment, rule["intentions"]


@pytest.fixture(scope="module")
def recorded():
    mocks = RecordingMocks()

    def program():
        mesh = ConsulMesh("consul", {"cluster": CLUSTER, "ca": CA, "registrar_image": REGISTRAR_IMAGE, "servers": 3})
        ContainerService(
            "web",
            {
                "cluster": CLUSTER,
                "discovery": mesh.discovery,
                "consul_service": {"name": "web"},
                "container": {"image": "nginx:1.27", "port": 8080},
            },
        )

    return run(program, mocks=mocks), mocks


@pytest.fixture(scope="module")
def mesh_plan(recorded):
    return recorded[0]


def secret_arn(plan, name):
    return plan.named(name, "aws:secretsmanager/secret:Secret")["outputs"]["arn"]


def task_containers(plan, task):
    definitions = json.loads(
        plan.named(task, "aws:ecs/taskDefinition:TaskDefinition")["inputs"]["containerDefinitions"]
    )
    return {d["name"]: d for d in definitions}


# -- the servers ---------------------------------------------------------------------------------


def test_servers_install_the_pinned_release_from_hashicorps_repository(mesh_plan):
    data = server_data(mesh_plan)
    assert data["version"] == "1.22.7"
    assert data["repository"] == "https://rpm.releases.hashicorp.com/AmazonLinux/hashicorp.repo"
    script = user_data(mesh_plan)
    assert 'dnf config-manager --add-repo "$(value .repository)"' in script
    assert 'dnf install -y "consul-$version"' in script


def test_servers_read_every_secret_by_arn_at_boot_never_by_value(recorded):
    plan, mocks = recorded
    data = server_data(plan)
    assert data["secrets"] == {
        "gossip": secret_arn(plan, "consul-gossip-key"),
        "server_key": secret_arn(plan, "consul-server-tls-key"),
        **{token: secret_arn(plan, f"consul-{token}-token") for token in TOKENS},
    }
    assert {v["inputs"]["secretString"] for v in plan.of_type("aws:secretsmanager/secretVersion:SecretVersion")} == {
        "[secret]"
    }
    script = user_data(plan)
    assert "consul-gossip-key.base64" in mocks.generated and len(mocks.generated) >= 6  # the key, five tokens
    for name, value in mocks.generated.items():
        assert value not in script, f"the user data holds {name}"


def test_server_configuration_has_the_values_that_matter(mesh_plan):
    config = server_data(mesh_plan)["config"]
    expected = {
        "server": True,
        "bootstrap_expect": 3,
        "datacenter": "dc1",
        "data_dir": "/opt/consul",
        "retry_join": [JOIN],
        "bind_addr": BIND_ADDRESS,
        "client_addr": "0.0.0.0",
        # plain HTTP on loopback only; HTTPS (8501) for the UI through an SSM port forward
        "addresses": {"http": "127.0.0.1"},
        "ports": {"https": 8501},
        "tls": {
            "defaults": {
                "ca_file": "/etc/consul.d/tls/ca.pem",
                "cert_file": "/etc/consul.d/tls/server.pem",
                "key_file": "/etc/consul.d/tls/server-key.pem",
                "verify_incoming": True,
                "verify_outgoing": True,
            },
            "internal_rpc": {"verify_server_hostname": True},
            "https": {"verify_incoming": False},
        },
        "auto_encrypt": {"allow_tls": True},
        "ui_config": {"enabled": True},
        "acl": {"enabled": True, "default_policy": "deny", "enable_token_persistence": True},
        "disable_update_check": True,
    }
    assert {key: config.get(key) for key in expected} == expected
    assert "encrypt" not in config and "tokens" not in json.dumps(config)  # secrets go in secrets.json at boot
    assert server_data(mesh_plan)["leader_timeout"] == 900


def test_each_token_gets_exactly_its_rights(mesh_plan):
    policies = server_data(mesh_plan)["acl_policies"]
    assert policies == {
        # apps look healthy instances up: /v1/health/service needs service and node read, nothing else
        "reader": {"service_prefix": {"": {"policy": "read"}}, "node_prefix": {"": {"policy": "read"}}},
        # client agents register their own node and read the catalog
        "agent": {"node_prefix": {"": {"policy": "write"}}, "service_prefix": {"": {"policy": "read"}}},
        # the registrar sidecar registers and deregisters services: service write only
        "registrar": {"service_prefix": {"": {"policy": "write"}}},
        # clustered broker nodes: their own service, the catalog, and a startup lock under rabbitmq/ only
        "broker": {
            "service": {"rabbitmq": {"policy": "write"}},
            "service_prefix": {"": {"policy": "read"}},
            "node_prefix": {"": {"policy": "read"}},
            "key_prefix": {"rabbitmq/": {"policy": "write"}},
            "session_prefix": {"": {"policy": "write"}},
        },
    }
    # The boot script gives each policy to the token stored under the same name; management is the
    # initial management token and gets no policy of its own.
    assert set(policies) <= set(server_data(mesh_plan)["secrets"])


def test_no_application_token_can_write_kv_acls_or_operator_state(mesh_plan):
    """The tokens app containers hold (reader, registrar) and the agents' token write no KV, ACL or operator
    state. The broker nodes' token writes only its startup lock's keys (key_prefix rabbitmq/) and sessions."""
    policies = server_data(mesh_plan)["acl_policies"]
    assert policies, "no ACL policies rendered"
    broker_writes = {(r, s) for r, s, right in grants(policies["broker"]) if right == "write"}
    assert broker_writes == {("service", "rabbitmq"), ("key_prefix", "rabbitmq/"), ("session_prefix", "")}
    for policy, rules in policies.items():
        assert policy != "management"
        if policy == "broker":
            continue
        for resource, segment, right in grants(rules):
            where = f"{policy}: {resource} {segment!r} {right}"
            assert resource.split(".")[0] not in SENSITIVE_RESOURCES or right in ("deny", None), where
            assert right in ("read", "write", "deny"), where
            assert not resource.endswith(".intentions") or right != "write", where


def test_grants_sees_every_form_of_rule():
    rules = {"key_prefix": {"": {"policy": "write"}}, "operator": "write", "service": {"web": {"intentions": "write"}}}
    assert set(grants(rules)) == {
        ("key_prefix", "", "write"),
        ("operator", None, "write"),
        ("service", "web", None),
        ("service.intentions", "web", "write"),
    }


def test_generated_credentials_are_secret_in_the_state(recorded):
    """What the engine would store unencrypted holds no generated credential (resources.json shows it)."""
    plan, mocks = recorded
    text = json.dumps(plan.to_json())
    leaked = sorted(name for name, value in mocks.generated.items() if value in text)
    assert leaked == [], f"in clear in the state: {leaked}"


def test_servers_join_by_tag_and_run_with_least_privilege(mesh_plan):
    group = mesh_plan.within(MESH, "aws:autoscaling/group:Group")["inputs"]
    tags = {t["key"]: t["value"] for t in group["tags"]}
    assert tags["seaport-consul-join"] == "seaport-test-consul"
    assert all(t["propagateAtLaunch"] for t in group["tags"])
    assert group["minSize"] == group["maxSize"] == group["desiredCapacity"] == 3
    assert group["vpcZoneIdentifiers"] == PRIVATE_SUBNETS
    (policy,) = [p for p in mesh_plan.of_type("aws:iam/rolePolicy:RolePolicy") if p["name"] == "consul-server"]
    statements = json.loads(policy["inputs"]["policy"])["Statement"]
    by_action = {a: sorted(s["Resource"]) for s in statements for a in s["Action"]}
    assert by_action == {
        "ec2:DescribeInstances": ["*"],
        "secretsmanager:GetSecretValue": sorted(
            s["outputs"]["arn"] for s in mesh_plan.of_type("aws:secretsmanager/secret:Secret")
        ),
    }
    template = mesh_plan.within(MESH, "aws:ec2/launchTemplate:LaunchTemplate")["inputs"]
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
    assert "keyName" not in template


def test_server_ami_is_readable_in_the_plan(mesh_plan):
    template = mesh_plan.within(MESH, "aws:ec2/launchTemplate:LaunchTemplate")["inputs"]
    assert template["imageId"].startswith("ami-"), template["imageId"]


def test_launch_template_waits_for_every_secret_version(mesh_plan):
    template = mesh_plan.within(MESH, "aws:ec2/launchTemplate:LaunchTemplate")
    versions = mesh_plan.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    assert len(versions) == 7  # gossip key, management, agent, registrar, reader, broker, server TLS key
    for version in versions:
        assert mesh_plan.depends_on(template, version), version["name"]


def test_gossip_key_is_32_random_bytes_in_secrets_manager(mesh_plan):
    key = mesh_plan.named("consul-gossip-key", "random:index/randomBytes:RandomBytes")
    assert key["inputs"]["length"] == 32
    secrets = {s["name"] for s in mesh_plan.of_type("aws:secretsmanager/secret:Secret")}
    assert secrets == {"consul-gossip-key", "consul-server-tls-key", *(f"consul-{t}-token" for t in TOKENS)}


def test_consul_ports_admit_only_the_cluster_and_server_groups(mesh_plan):
    servers = mesh_plan.named("consul-servers", "aws:ec2/securityGroup:SecurityGroup")["outputs"]["id"]
    cluster = INSTANCE_SG
    rules = [r["inputs"] for r in mesh_plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")]
    assert all("cidrIpv4" not in r and "cidrIpv6" not in r for r in rules)
    assert all(r["fromPort"] == r["toPort"] for r in rules)

    def admitted(group):
        return {
            (r["fromPort"], r["ipProtocol"], r["referencedSecurityGroupId"])
            for r in rules
            if r["securityGroupId"] == group
        }

    from_agents_and_servers = {
        (port, protocol, source)
        # RPC (TLS) and LAN gossip: no HTTP API, no DNS (agents need neither from the servers)
        for port, protocol in [(8300, "tcp"), (8301, "tcp"), (8301, "udp")]
        for source in (cluster, servers)
    }
    wan_gossip_between_servers = {(8302, "tcp", servers), (8302, "udp", servers)}  # and from no one else
    assert admitted(servers) == from_agents_and_servers | wan_gossip_between_servers
    assert admitted(cluster) == {
        (8301, "tcp", cluster),
        (8301, "udp", cluster),
        (8301, "tcp", servers),
        (8301, "udp", servers),
    }


def test_the_ui_has_no_load_balancer_only_the_servers_https_port(mesh_plan):
    """Fewer parts, and the management token typed into the UI never crosses the VPC in clear."""
    assert not [r for r in mesh_plan.resources if r["type"].startswith("aws:lb/")]
    assert mesh_plan.one(MESH)["outputs"]["ui_port"] == 8501
    group = mesh_plan.named("consul-servers", "aws:autoscaling/group:Group")["inputs"]
    assert "targetGroupArns" not in group


def test_the_servers_serve_rpc_with_a_certificate_from_the_internal_ca(recorded):
    plan, mocks = recorded
    data = server_data(plan)
    certificate = plan.named("consul-server-tls-cert", "tls:index/locallySignedCert:LocallySignedCert")
    request = plan.named("consul-server-tls-request", "tls:index/certRequest:CertRequest")["inputs"]
    assert request["dnsNames"] == ["server.dc1.consul", "localhost"] and request["ipAddresses"] == ["127.0.0.1"]
    assert certificate["inputs"]["caCertPem"] == CA_CERT
    assert certificate["inputs"]["caPrivateKeyPem"] == "[secret]"
    assert set(certificate["inputs"]["allowedUses"]) >= {"server_auth", "client_auth"}
    assert data["tls"] == {"ca": CA_CERT, "certificate": certificate["outputs"]["certPem"]}
    # the key goes to Secrets Manager and is read at boot like the tokens, never written into the user data
    assert data["secrets"]["server_key"] == secret_arn(plan, "consul-server-tls-key")
    key = mocks.generated.get("consul-server-tls-key-key.privateKeyPem") or ""
    assert "PRIVATE KEY" not in user_data(plan) and (not key or key not in user_data(plan))


# -- the agents ----------------------------------------------------------------------------------


def test_agent_daemon_in_host_mode_with_pinned_image_and_secrets(mesh_plan):
    task = mesh_plan.named("consul-agent-task", "aws:ecs/taskDefinition:TaskDefinition")["inputs"]
    assert task["networkMode"] == "host"
    agent = task_containers(mesh_plan, "consul-agent-task")["consul-agent"]
    assert agent["image"].startswith("public.ecr.aws/hashicorp/consul:1.22.7@sha256:")
    assert agent["secrets"] == [
        {"name": "CONSUL_AGENT_ACL", "valueFrom": secret_arn(mesh_plan, "consul-agent-token")},
        {"name": "CONSUL_GOSSIP_ENCRYPTION", "valueFrom": secret_arn(mesh_plan, "consul-gossip-key")},
    ]
    assert agent["healthCheck"]["command"] == [
        "CMD-SHELL",
        "curl -sf http://127.0.0.1:8500/v1/status/leader | grep -q ':'",
    ]
    assert agent["mountPoints"] == [{"sourceVolume": "consul-data", "containerPath": "/consul/data", "readOnly": False}]
    # read-only but for its data volume and the configuration the entry point writes (a tmpfs)
    assert agent["readonlyRootFilesystem"] is True
    assert [t["containerPath"] for t in agent["linuxParameters"]["tmpfs"]] == ["/tmp", "/consul/config"]
    assert "/consul/config/secrets.json" in agent["command"][-1] and cfg.AGENT_CA_FILE.startswith("/consul/config/")
    # as the uid the instances keep away from the instance metadata service
    variables = {e["name"]: e["value"] for e in agent["environment"]}
    assert variables["CONSUL_UID"] == "100" and 100 in CLUSTER_DEFAULTS["metadata_blocked_uids"]
    (policy,) = [p for p in mesh_plan.of_type("aws:iam/rolePolicy:RolePolicy") if p["name"] == "consul-agent-task"]
    assert json.loads(policy["inputs"]["policy"])["Statement"] == [
        {"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": ["*"]}
    ]


def test_agent_configuration_has_the_values_that_matter(mesh_plan):
    agent = task_containers(mesh_plan, "consul-agent-task")["consul-agent"]
    variables = {e["name"]: e["value"] for e in agent["environment"]}
    assert set(variables) == {"CONSUL_LOCAL_CONFIG", "CONSUL_CA_PEM", "CONSUL_UID"}
    assert variables["CONSUL_CA_PEM"] == CA_CERT  # public: the agents trust the servers through it
    config = json.loads(variables["CONSUL_LOCAL_CONFIG"])
    expected = {
        "server": False,
        "datacenter": "dc1",
        "retry_join": [JOIN],
        "bind_addr": BIND_ADDRESS,
        # HTTP API on loopback and docker0 only: the instance and its bridge-mode containers
        "client_addr": '{{ GetAllInterfaces | include "name" "^(lo|docker0)$" | include "type" "IPv4" '
        '| join "address" " " }}',
        "acl": {"enabled": True, "default_policy": "deny", "enable_token_persistence": True},
        # RPC to the servers over TLS, their name checked; the agent's certificate from the servers
        "tls": {
            "defaults": {"ca_file": "/consul/config/ca.pem", "verify_outgoing": True},
            "internal_rpc": {"verify_server_hostname": True},
        },
        "auto_encrypt": {"tls": True},
        "leave_on_terminate": True,
    }
    assert {key: config.get(key) for key in expected} == expected
    assert "encrypt" not in config and "tokens" not in json.dumps(config)


def test_agent_is_a_daemon_without_circuit_breaker(mesh_plan):
    service = mesh_plan.named("consul-agent", "aws:ecs/service:Service")["inputs"]
    assert service["schedulingStrategy"] == "DAEMON"
    assert service["launchType"] == "EC2"
    # ECS derives the breaker's threshold from a desired count a daemon does not have: it would never trip.
    assert "deploymentCircuitBreaker" not in service
    assert "desiredCount" not in service
    web = mesh_plan.named("web", "aws:ecs/service:Service")["inputs"]
    assert web["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}


# -- discovery for tasks -------------------------------------------------------------------------


def test_discovery_reference_names_the_reader_and_registrar_tokens(mesh_plan):
    discovery = mesh_plan.one(MESH)["outputs"]["discovery"]
    assert discovery == {
        "agent_address": "consul-agent:8500",
        "agent_hosts": {"consul-agent": "172.17.0.1"},
        "reader_token_secret_arn": secret_arn(mesh_plan, "consul-reader-token"),
        "registrar_image": REGISTRAR_IMAGE,
        "registrar_token_secret_arn": secret_arn(mesh_plan, "consul-registrar-token"),
        "broker_token_secret_arn": secret_arn(mesh_plan, "consul-broker-token"),
    }


def test_registrar_sidecar_makes_a_container_discoverable(mesh_plan):
    _web, registrar = json.loads(
        mesh_plan.named("web-task", "aws:ecs/taskDefinition:TaskDefinition")["inputs"]["containerDefinitions"]
    )
    assert registrar["name"] == "web-registrar" and registrar["essential"] is True
    assert registrar["image"] == REGISTRAR_IMAGE
    assert {e["name"]: e["value"] for e in registrar["environment"]} == {
        "REGISTRAR_SERVICE": "web",
        "REGISTRAR_CONTAINER": "web",
        "REGISTRAR_CONTAINER_PORT": "8080",
        "REGISTRAR_CHECK": "http:/health",
        "CONSUL_HTTP_ADDR": "consul-agent:8500",
    }
    assert registrar["secrets"] == [
        {"name": "CONSUL_HTTP_TOKEN", "valueFrom": secret_arn(mesh_plan, "consul-registrar-token")}
    ]
    assert registrar["extraHosts"] == [{"hostname": "consul-agent", "ipAddress": "172.17.0.1"}]
    assert registrar["dependsOn"] == [{"containerName": "web", "condition": "START"}]


def test_tasks_wait_for_the_secret_versions_they_read(mesh_plan):
    versions = {
        v["outputs"]["secretId"]: v for v in mesh_plan.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    }
    for task in mesh_plan.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        read = {
            ":".join(s["valueFrom"].split(":")[:7])
            for d in json.loads(task["inputs"]["containerDefinitions"])
            for s in d["secrets"]
        }
        assert read, task["name"]
        for arn in read:
            assert mesh_plan.depends_on(task, versions[arn]), f"{task['name']} does not wait for {arn}'s value"


# -- bad arguments -------------------------------------------------------------------------------


def test_bad_arguments_are_all_reported_before_anything_is_registered():
    mocks = RecordingMocks()
    args = {
        "cluster": CLUSTER,
        "ca": CA,
        "servers": 2,
        "version": "1.21",
        "instance_type": "tiny",
        "log_retention_days": 10,
    }
    error = run(lambda: ConsulMesh("consul", args), mocks=mocks, expect=InvalidArgument)
    assert {(p.path, p.value) for p in error.problems} == {
        ("registrar_image", error.problems[0].value),
        ("servers", 2),
        ("version", "1.21"),
        ("instance_type", "tiny"),
        ("log_retention_days", 10),
    }
    text = str(error)
    for message in (
        "registrar_image is required",
        "servers=2 must be one of 1, 3, 5",
        "version='1.21' must be an exact release",
        "instance_type='tiny' is not an EC2 instance type",
        "log_retention_days=10 must be one of 1, 3, 5",
    ):
        assert message in text
    assert mocks.registered == []


def test_cluster_is_required():
    error = run(lambda: ConsulMesh("consul", {"registrar_image": REGISTRAR_IMAGE}), expect=InvalidArgument)
    assert [str(p) for p in error.problems] == ["cluster is required", "ca is required"]
