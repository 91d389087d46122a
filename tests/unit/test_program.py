"""The whole program, both stacks: images, secrets, reachability, discovery wiring, broker modes."""

import base64
import ipaddress
import json
import re
import runpy

import pytest

from seaport import rules
from seaport.tools.testing import run, stack_config
from tests.unit.conftest import REPO
from tests.unit.test_consul import RecordingMocks, server_data
from tests.unit.test_messaging import assert_admits_amqps_only_from

STACKS = ["dev_plan", "prod_plan"]
APPS = {"send", "receive", "portal", "weather", "stocks", "registrar"}
PINNED_THIRD_PARTY = re.compile(
    r"^public\.ecr\.aws/(docker/library/rabbitmq:\d+\.\d+\.\d+-management|hashicorp/consul:\d+\.\d+\.\d+)"
    r"@sha256:[0-9a-f]{64}$"
)
# Candidates for address literals; ipaddress decides which really are addresses.
IPV4_CANDIDATE = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])")
IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:.])")
# The one documented address: the docker0 gateway through which bridge-mode containers reach the
# instance's Consul agent, as an /etc/hosts entry (extraHosts), never in environment or commands.
DOCKER0_GATEWAY = "172.17.0.1"


@pytest.fixture(params=STACKS)
def plan(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module", params=["dev", "prod"])
def recorded(request):
    """(plan, generated credential values) of a stack: the program run under recording mocks."""
    mocks = RecordingMocks()
    config = stack_config(REPO, request.param)
    plan = run(
        lambda: runpy.run_path(str(REPO / "__main__.py"), run_name="__main__"),
        stack=request.param,
        config=config,
        mocks=mocks,
    )
    return plan, mocks.generated


def containers(plan):
    """(task definition, container definition) for every container of every task."""
    for task in plan.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        for definition in json.loads(task["inputs"]["containerDefinitions"]):
            yield task, definition


def container(plan, name):
    (found,) = [d for _, d in containers(plan) if d["name"] == name]
    return found


def env(definition):
    return {e["name"]: e["value"] for e in definition["environment"]}


def policy_statements(plan, role_arn):
    """Every statement of the inline policies of the role with this ARN."""
    role = plan.referenced(role_arn)
    policies = [
        p for p in plan.of_type("aws:iam/rolePolicy:RolePolicy") if p["inputs"]["role"] == role["outputs"]["name"]
    ]
    return [s for p in policies for s in json.loads(p["inputs"]["policy"])["Statement"]]


def readable_secrets(statements):
    return {r for s in statements if "secretsmanager:GetSecretValue" in s["Action"] for r in s["Resource"]}


def secret_arn_of(value_from):
    """The secret's ARN in an ECS valueFrom (``<arn>`` or ``<arn>:<json-key>::``)."""
    return ":".join(value_from.split(":")[:7])


def ip_literals(text):
    """Every IPv4 or IPv6 address written in ``text``."""
    found = []
    for pattern in (IPV4_CANDIDATE, IPV6_CANDIDATE):
        for candidate in pattern.findall(text):
            try:
                ipaddress.ip_address(candidate)
            except ValueError:
                continue
            found.append(candidate)
    return found


# -- images ---------------------------------------------------------------------------------------


def test_six_images_built_from_one_dockerfile_for_the_stack_platform(plan):
    images = plan.of_type("docker:index/image:Image")
    assert len(images) == 6
    builds = [i["inputs"]["build"] for i in images]
    assert {b["platform"] for b in builds} == {"linux/amd64"}
    assert {b["dockerfile"] for b in builds} == {"apps/Dockerfile"}
    assert {b["context"] for b in builds} == {"apps"}
    assert sorted(b["target"] for b in builds) == sorted(APPS)


def test_every_image_is_an_ecr_digest_except_the_pinned_broker_and_consul(plan):
    digests = {i["outputs"]["repoDigest"] for i in plan.of_type("docker:index/image:Image")}
    third_party = set()
    for _, definition in containers(plan):
        image = definition["image"]
        if image in digests:
            continue
        assert PINNED_THIRD_PARTY.match(image), f"{definition['name']} uses {image}"
        third_party.add(image.split(":")[0])
    assert third_party == {"public.ecr.aws/docker/library/rabbitmq", "public.ecr.aws/hashicorp/consul"}


# -- secrets ----------------------------------------------------------------------------------------


def test_no_environment_holds_a_secret_by_name_or_by_value(recorded):
    plan, generated = recorded
    assert generated, "the recording mocks saw no generated credential"
    values = set(generated.values())
    for task, definition in containers(plan):
        leaked = rules.plaintext_secrets(env(definition), values)
        assert leaked == [], f"{task['name']}/{definition['name']}: {leaked}"


def test_no_generated_credential_appears_in_clear_in_resources_json(recorded):
    plan, generated = recorded
    text = json.dumps(plan.to_json())
    leaked = sorted(name for name, value in generated.items() if value in text)
    assert leaked == [], f"in clear in resources.json (and in the state): {leaked}"


def test_recorded_run_is_the_planned_program(recorded, dev_plan, prod_plan):
    plan, _ = recorded
    planned = dev_plan if plan.stack == "dev" else prod_plan
    assert [r["urn"] for r in plan.resources] == [r["urn"] for r in planned.resources]


def test_no_ip_address_in_any_environment_or_command(plan):
    for task, definition in containers(plan):
        where = f"{task['name']}/{definition['name']}"
        for name, value in env(definition).items():
            # loopback only: a process binding something to its own container (e.g. RabbitMQ's management API)
            assert all(ipaddress.ip_address(a).is_loopback for a in ip_literals(value)), f"{where}: {name}={value}"
        for argument in definition.get("command", []) + definition.get("entryPoint", []):
            assert ip_literals(argument) == [], f"{where}: command {argument}"
        for argument in (definition.get("healthCheck") or {}).get("command", []):
            # a health check asks its own container, on loopback
            assert all(ipaddress.ip_address(a).is_loopback for a in ip_literals(argument)), f"{where}: {argument}"
        for host in definition.get("extraHosts", []):
            assert host == {"hostname": "consul-agent", "ipAddress": DOCKER0_GATEWAY}, where


def test_ip_literals_finds_addresses_and_only_addresses():
    assert ip_literals("amqp://10.0.1.5:5672/") == ["10.0.1.5"]
    assert ip_literals("http://[fd00::1]:8500") == ["fd00::1"]
    assert ip_literals("--bind 0.0.0.0") == ["0.0.0.0"]
    assert ip_literals("consul-agent:8500 hashicorp/consul:1.21.5 rabbitmq:4.1.4-management 1.2.3.4.5") == []
    assert ip_literals("10:30 a::b::c 999.1.1.1 2026-11-30T06:50:37") == []


def test_every_secret_is_a_stored_secret_the_execution_role_may_read_and_no_more(plan):
    secret_arns = {s["outputs"]["arn"] for s in plan.of_type("aws:secretsmanager/secret:Secret")}
    for task in plan.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        referenced = set()
        for definition in json.loads(task["inputs"]["containerDefinitions"]):
            for secret in definition["secrets"]:
                arn = secret_arn_of(secret["valueFrom"])
                assert arn in secret_arns, f"{definition['name']} reads {secret['valueFrom']}"
                referenced.add(arn)
        allowed = readable_secrets(policy_statements(plan, task["inputs"]["executionRoleArn"]))
        assert allowed == referenced, task["name"]
        assert not readable_secrets(policy_statements(plan, task["inputs"]["taskRoleArn"]))


def test_no_role_may_read_secrets_by_wildcard(plan):
    for policy in plan.of_type("aws:iam/rolePolicy:RolePolicy"):
        for statement in json.loads(policy["inputs"]["policy"])["Statement"]:
            if any(a.startswith("secretsmanager:") for a in statement["Action"]):
                assert all("*" not in r for r in statement["Resource"]), policy["name"]


def test_one_secret_per_generated_credential(plan):
    names = sorted(s["name"] for s in plan.of_type("aws:secretsmanager/secret:Secret"))
    expected = [
        "consul-agent-token",
        "consul-broker-token",
        "consul-gossip-key",
        "consul-management-token",
        "consul-reader-token",
        "consul-registrar-token",
        "consul-server-tls-key",  # the Consul servers' TLS key
        "messaging-broker-credentials",
        "messaging-broker-definitions",  # the broker's user (password hash), queues and policy
        "messaging-broker-tls-key",  # the broker's TLS key
    ]
    if _clustered(plan):
        expected.append("messaging-erlang-cookie")  # the nodes of the cluster authenticate each other with it
    assert names == sorted(expected)
    values = [v["inputs"]["secretString"] for v in plan.of_type("aws:secretsmanager/secretVersion:SecretVersion")]
    assert len(values) == len(names) and set(values) == {"[secret]"}  # generated values are secrets end to end


def test_tasks_launch_templates_and_services_wait_for_the_secret_values_they_use(plan):
    """A secret exists before it has a value: whatever reads one waits for its SecretVersion."""
    versions = {v["outputs"]["secretId"]: v for v in plan.of_type("aws:secretsmanager/secretVersion:SecretVersion")}
    tasks = {t["outputs"]["arn"]: t for t in plan.of_type("aws:ecs/taskDefinition:TaskDefinition")}
    for task in tasks.values():
        for definition in json.loads(task["inputs"]["containerDefinitions"]):
            for secret in definition["secrets"]:
                version = versions[secret_arn_of(secret["valueFrom"])]
                assert plan.depends_on(task, version), f"{task['name']} does not wait for {version['name']}"
    for service in plan.of_type("aws:ecs/service:Service"):
        assert plan.depends_on(service, tasks[service["inputs"]["taskDefinition"]]), service["name"]
    read_at_boot = {}
    for template in plan.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        script = base64.b64decode(template["inputs"]["userData"]).decode()
        read_at_boot[template["name"]] = {arn for arn in versions if arn in script}
        for arn in read_at_boot[template["name"]]:
            assert plan.depends_on(template, versions[arn]), f"{template['name']} does not wait for {arn}'s value"
    assert read_at_boot == {
        "consul-server": set(server_data(plan)["secrets"].values()),
        "seaport-instances": set(),
        ("seaport-broker-node" if _clustered(plan) else "seaport-broker"): set(),
    }
    assert len(read_at_boot["consul-server"]) == 7


def test_ami_ids_are_readable_in_the_plan(plan):
    templates = plan.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    # the broker's own instances: a container-mode broker's, or one template for a clustered broker's nodes
    dedicated = "seaport-broker-node" if _clustered(plan) else "seaport-broker"
    assert {t["name"] for t in templates} == {"seaport-instances", "consul-server", dedicated}
    for template in templates:
        assert re.fullmatch(r"ami-[0-9a-f]{17}", template["inputs"]["imageId"]), template["name"]


# -- reachability ---------------------------------------------------------------------------------


def _group_of(plan, name):
    return plan.named(name, "aws:ec2/securityGroup:SecurityGroup")["outputs"]["id"]


def test_consul_and_broker_ports_are_reachable_only_from_the_cluster_and_server_groups(plan):
    cluster = _group_of(plan, "seaport-instances")
    servers = _group_of(plan, "consul-servers")
    alb = _group_of(plan, "portal-alb")
    ingress = [r["inputs"] for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")]

    def admitted(group):
        return {
            (r["fromPort"], r["toPort"], r["ipProtocol"], r.get("referencedSecurityGroupId") or r.get("cidrIpv4"))
            for r in ingress
            if r["securityGroupId"] == group
        }

    consul_ports = [(8300, "tcp"), (8301, "tcp"), (8301, "udp")]  # RPC (TLS) and gossip; no HTTP, no DNS
    assert admitted(servers) == (
        {(port, port, protocol, source) for port, protocol in consul_ports for source in (cluster, servers)}
        | {(8302, 8302, "tcp", servers), (8302, 8302, "udp", servers)}  # WAN gossip between servers only
    )
    assert admitted(cluster) == {
        # the dynamic host ports (the broker's among them), from the cluster itself and the portal's ALB
        (32768, 65535, "tcp", cluster),
        (32768, 65535, "tcp", alb),
        # LAN gossip with the agents
        (8301, 8301, "tcp", cluster),
        (8301, 8301, "udp", cluster),
        (8301, 8301, "tcp", servers),
        (8301, 8301, "udp", servers),
    } | (clustered_broker_rules(cluster) if _clustered(plan) else set())


def clustered_broker_rules(cluster):
    """A clustered broker (host network) is reached on AMQP, and its nodes reach each other on epmd,
    distribution and CLI ports: from the cluster's instances only."""
    return {
        (5671, 5671, "tcp", cluster),
        (4369, 4369, "tcp", cluster),
        (25672, 25672, "tcp", cluster),
        (35672, 35682, "tcp", cluster),
    }


def _clustered(plan):
    broker = plan.named("messaging-broker", "aws:ecs/service:Service")
    return plan.referenced(broker["inputs"]["taskDefinition"])["inputs"]["networkMode"] == "host"


def test_only_the_portal_listener_is_open_to_the_world(plan):
    alb = _group_of(plan, "portal-alb")
    world = [
        r["inputs"]
        for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r["inputs"].get("cidrIpv4") == "0.0.0.0/0" or r["inputs"].get("cidrIpv6") == "::/0"
    ]
    # dev serves plain HTTP (seaport:allowPlainHttp); prod serves HTTPS and keeps 80 only to redirect to it
    ports = [(80, 80)] if plan.stack == "dev" else [(80, 80), (443, 443)]
    assert sorted((r["securityGroupId"], r["fromPort"], r["toPort"]) for r in world) == [(alb, *p) for p in ports]


def test_prod_serves_https_under_its_name_and_http_only_redirects(prod_plan):
    listeners = {r["inputs"]["port"]: r["inputs"] for r in prod_plan.of_type("aws:lb/listener:Listener")}
    assert set(listeners) == {80, 443}
    (redirect,) = listeners[80]["defaultActions"]
    assert redirect["type"] == "redirect" and redirect["redirect"]["protocol"] == "HTTPS"
    validated = prod_plan.one("aws:acm/certificateValidation:CertificateValidation")["outputs"]["certificateArn"]
    assert listeners[443]["certificateArn"] == validated  # the listener waits for the certificate to be issued
    alias = prod_plan.named("portal-alias", "aws:route53/record:Record")["inputs"]
    assert alias["name"] == prod_plan.outputs["portalUrl"].removeprefix("https://").rstrip("/")
    assert prod_plan.one("aws:wafv2/webAclAssociation:WebAclAssociation")
    assert prod_plan.one("aws:lb/loadBalancer:LoadBalancer")["inputs"]["enableDeletionProtection"] is True


# -- discovery ---------------------------------------------------------------------------------------


def test_send_and_receive_find_the_broker_through_consul(plan):
    reader = plan.named("consul-reader-token", "aws:secretsmanager/secret:Secret")["outputs"]["arn"]
    for app in ("send", "receive"):
        definition = container(plan, app)
        variables = env(definition)
        assert variables["RABBITMQ_SERVICE"] == "rabbitmq"
        assert variables["CONSUL_HTTP_ADDR"] == "consul-agent:8500"
        assert "RABBITMQ_URL" not in variables
        secrets = {s["name"]: s["valueFrom"] for s in definition["secrets"]}
        assert set(secrets) == {"RABBITMQ_USERNAME", "RABBITMQ_PASSWORD", "CONSUL_HTTP_TOKEN"}
        assert secrets["CONSUL_HTTP_TOKEN"] == reader
        assert definition["extraHosts"] == [{"hostname": "consul-agent", "ipAddress": DOCKER0_GATEWAY}]


def test_portal_finds_weather_and_stocks_through_consul(plan):
    portal = container(plan, "portal")
    assert env(portal)["CONSUL_HTTP_ADDR"] == "consul-agent:8500"
    assert (env(portal)["WEATHER_SERVICE"], env(portal)["STOCKS_SERVICE"]) == ("weather", "stocks")
    assert "WEATHER_URL" not in env(portal) and "STOCKS_URL" not in env(portal)
    registrar_token = plan.named("consul-registrar-token", "aws:secretsmanager/secret:Secret")["outputs"]["arn"]
    for backend in ("weather", "stocks"):
        registrar = container(plan, f"{backend}-registrar")
        variables = env(registrar)
        assert (variables["REGISTRAR_SERVICE"], variables["REGISTRAR_CONTAINER"]) == (backend, backend)
        assert (variables["REGISTRAR_CONTAINER_PORT"], variables["REGISTRAR_CHECK"]) == ("8080", "http:/health")
        assert registrar["secrets"] == [{"name": "CONSUL_HTTP_TOKEN", "valueFrom": registrar_token}]
    if _clustered(plan):  # the nodes register themselves (Consul peer discovery), no registrar
        assert not [d for _, d in containers(plan) if d["name"] == "rabbitmq-registrar"]
        return
    broker = env(container(plan, "rabbitmq-registrar"))
    assert (broker["REGISTRAR_SERVICE"], broker["REGISTRAR_CONTAINER_PORT"], broker["REGISTRAR_CHECK"]) == (
        "rabbitmq",
        "5671",
        "tcp",
    )


def test_the_agent_daemon_uses_host_networking_on_every_instance_without_a_breaker(plan):
    (task,) = [t for t, d in containers(plan) if d["name"] == "consul-agent"]
    assert task["inputs"]["networkMode"] == "host"
    services = [
        s for s in plan.of_type("aws:ecs/service:Service") if s["inputs"]["taskDefinition"] == task["outputs"]["arn"]
    ]
    assert [s["inputs"]["schedulingStrategy"] for s in services] == ["DAEMON"]
    assert "deploymentCircuitBreaker" not in services[0]["inputs"]


def test_every_replica_service_rolls_back_failed_deployments(plan):
    replicas = [s for s in plan.of_type("aws:ecs/service:Service") if s["inputs"]["schedulingStrategy"] == "REPLICA"]
    assert len(replicas) == 6
    for service in replicas:
        assert service["inputs"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}, service["name"]


def test_consul_servers_and_portal_tasks_follow_the_stack(dev_plan, prod_plan):
    for plan, servers, min_tasks in ((dev_plan, 1, 1), (prod_plan, 3, 3)):
        group = plan.within("seaport:index:ConsulMesh", "aws:autoscaling/group:Group")["inputs"]
        assert group["minSize"] == group["maxSize"] == group["desiredCapacity"] == servers
        assert server_data(plan)["config"]["bootstrap_expect"] == servers
        # the portal starts minTasks tasks; autoscaling owns the count after that
        assert plan.named("portal", "aws:ecs/service:Service")["inputs"]["desiredCount"] == min_tasks


def test_exports(plan):
    outputs = plan.outputs
    assert outputs["portalUrl"].startswith("http://" if plan.stack == "dev" else "https://")
    assert outputs["consulServersGroup"].startswith("consul-servers")  # the UI: SSM port forward to a server
    assert outputs["internalCaCertificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert outputs["brokerEndpoint"] == "consul:rabbitmq"
    assert outputs["clusterName"]
    assert outputs["vpcId"].startswith("vpc-")
    assert set(outputs["imageDigests"]) == APPS
    assert all("@sha256:" in d for d in outputs["imageDigests"].values())


# -- broker modes -------------------------------------------------------------------------------


def _by_name(plan):
    return {d["name"]: d for _, d in containers(plan)}


def test_amazonmq_mode_replaces_only_the_broker(dev_plan, dev_amazonmq_plan):
    assert not dev_plan.of_type("aws:mq/broker:Broker")
    broker = dev_amazonmq_plan.one("aws:mq/broker:Broker")["inputs"]
    assert broker["engineType"] == "RabbitMQ" and broker["publiclyAccessible"] is False
    users = broker["users"]  # the engine marks the whole list secret when the password is
    assert users == "[secret]" or users[0]["password"] == "[secret]"
    before, after = _by_name(dev_plan), _by_name(dev_amazonmq_plan)
    assert set(before) - set(after) == {"rabbitmq", "rabbitmq-registrar"}
    assert set(after) <= set(before)
    for name, definition in after.items():
        old = before[name]
        if name in ("send", "receive"):
            assert env(definition)["RABBITMQ_URL"].startswith("amqps://")
            changed = {k for k in set(env(definition)) | set(env(old)) if env(definition).get(k) != env(old).get(k)}
            # without the broker in Consul, the apps need neither the agent nor the reader token
            # Amazon MQ: its endpoint and public certificate instead of Consul and the internal CA
            tls = {"RABBITMQ_TLS", "RABBITMQ_TLS_SERVER_NAME", "RABBITMQ_CA_PEM"}
            assert changed == {"RABBITMQ_URL", "RABBITMQ_SERVICE", "CONSUL_HTTP_ADDR", *tls}
            assert {s["name"] for s in old["secrets"]} - {s["name"] for s in definition["secrets"]} == {
                "CONSUL_HTTP_TOKEN"
            }
            keep = ("environment", "secrets", "extraHosts")
            definition = {k: v for k, v in definition.items() if k not in keep}
            old = {k: v for k, v in old.items() if k not in keep}
        assert definition == old, name
    assert dev_amazonmq_plan.outputs["brokerEndpoint"].startswith("amqps://")


def test_amazonmq_broker_admits_only_the_cluster(dev_amazonmq_plan):
    cluster = _group_of(dev_amazonmq_plan, "seaport-instances")
    broker_group = _group_of(dev_amazonmq_plan, "messaging-broker")
    assert_admits_amqps_only_from(dev_amazonmq_plan, broker_group, cluster)
