"""The whole program, both stacks: images, secrets, reachability, discovery wiring, broker modes."""

import ipaddress
import json
import re

import pytest
from seaport.consul import SERVER_PORTS

STACKS = ["dev_plan", "prod_plan"]
PINNED_THIRD_PARTY = re.compile(
    r"^(rabbitmq:\d+\.\d+\.\d+-management|hashicorp/consul:\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}$"
)
IP_LITERAL = re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b")


@pytest.fixture(params=STACKS)
def plan(request):
    return request.getfixturevalue(request.param)


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


def test_six_images_built_for_the_stack_platform(plan):
    images = plan.of_type("docker:index/image:Image")
    assert len(images) == 6
    assert {i["inputs"]["build"]["platform"] for i in images} == {"linux/amd64"}
    dockerfiles = sorted(i["inputs"]["build"]["dockerfile"] for i in images)
    assert dockerfiles == [
        f"apps/{a}/Dockerfile" for a in sorted(["portal", "receive", "registrar", "send", "stocks", "weather"])
    ]
    assert {i["inputs"]["build"]["context"] for i in images} == {"apps"}


def test_every_image_is_an_ecr_digest_except_the_pinned_broker_and_consul(plan):
    digests = {i["outputs"]["repoDigest"] for i in plan.of_type("docker:index/image:Image")}
    third_party = set()
    for _, definition in containers(plan):
        image = definition["image"]
        if image in digests:
            continue
        assert PINNED_THIRD_PARTY.match(image), f"{definition['name']} uses {image}"
        third_party.add(image.split(":")[0])
    assert third_party == {"rabbitmq", "hashicorp/consul"}


def test_no_environment_holds_a_password_or_an_ip_address(plan):
    for _, definition in containers(plan):
        for name, value in env(definition).items():
            assert not re.search(r"PASSWORD|SECRET|TOKEN|KEY", name), f"{definition['name']}: {name}"
            for candidate in IP_LITERAL.finditer(value):
                with pytest.raises(ValueError):
                    ipaddress.ip_address(candidate.group(0))
                pytest.fail(f"{definition['name']}: {name} holds {candidate.group(0)}")


def test_every_secret_is_a_stored_secret_the_execution_role_may_read_and_no_more(plan):
    secret_arns = {s["outputs"]["arn"] for s in plan.of_type("aws:secretsmanager/secret:Secret")}
    for task in plan.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        referenced = set()
        for definition in json.loads(task["inputs"]["containerDefinitions"]):
            for secret in definition["secrets"]:
                arn = ":".join(secret["valueFrom"].split(":")[:7])
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


def test_one_secret_for_the_broker_credentials_and_one_for_the_gossip_key(plan):
    names = [s["name"] for s in plan.of_type("aws:secretsmanager/secret:Secret")]
    assert names.count("messaging-broker-credentials") == 1
    assert names.count("consul-gossip-key") == 1
    values = [v["inputs"]["secretString"] for v in plan.of_type("aws:secretsmanager/secretVersion:SecretVersion")]
    assert values and set(values) == {"[secret]"}  # generated values are secrets end to end


def _group_of(plan, name):
    return plan.named(name, "aws:ec2/securityGroup:SecurityGroup")["outputs"]["id"]


def test_consul_and_broker_ports_are_reachable_only_from_the_cluster_and_server_groups(plan):
    cluster = _group_of(plan, "seaport-instances")
    servers = _group_of(plan, "consul-servers")
    ui = _group_of(plan, "consul-ui")
    alb = _group_of(plan, "portal-alb")
    rules = [r["inputs"] for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")]
    consul_ports = {p for p, _, _ in SERVER_PORTS}
    for rule in rules:
        ports = set(range(rule["fromPort"], rule["toPort"] + 1))
        if rule["securityGroupId"] == servers:
            assert ports <= consul_ports
            allowed = {cluster, servers} | ({ui} if ports == {8500} else set())
            assert rule.get("referencedSecurityGroupId") in allowed, rule
        if rule["securityGroupId"] == cluster:
            # the dynamic host ports (the broker's among them) from the cluster itself and the ALB; gossip
            assert rule.get("referencedSecurityGroupId") in {cluster, servers, alb}, rule
            assert "cidrIpv4" not in rule and "cidrIpv6" not in rule
    broker_port_sources = {
        r["referencedSecurityGroupId"]
        for r in rules
        if r["securityGroupId"] == cluster and r["fromPort"] <= 32768 and r["toPort"] >= 65535
    }
    assert broker_port_sources == {cluster, alb}
    server_sources = {
        (r["fromPort"], r["ipProtocol"], r["referencedSecurityGroupId"])
        for r in rules
        if r["securityGroupId"] == servers
    }
    for port, protocol, _ in SERVER_PORTS:
        assert {(port, protocol, cluster), (port, protocol, servers)} <= server_sources


def test_only_the_portal_listener_is_open_to_the_world(plan):
    alb = _group_of(plan, "portal-alb")
    world = [
        r["inputs"]
        for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r["inputs"].get("cidrIpv4") == "0.0.0.0/0" or r["inputs"].get("cidrIpv6") == "::/0"
    ]
    assert [(r["securityGroupId"], r["fromPort"], r["toPort"]) for r in world] == [(alb, 80, 80)]


def test_send_and_receive_find_the_broker_through_consul(plan):
    for app in ("send", "receive"):
        definition = container(plan, app)
        variables = env(definition)
        assert variables["RABBITMQ_SERVICE"] == "rabbitmq"
        assert variables["CONSUL_HTTP_ADDR"] == "consul-agent:8500"
        assert "RABBITMQ_URL" not in variables
        assert {s["name"] for s in definition["secrets"]} == {
            "RABBITMQ_USERNAME",
            "RABBITMQ_PASSWORD",
            "CONSUL_HTTP_TOKEN",
        }
        assert definition["extraHosts"] == [{"hostname": "consul-agent", "ipAddress": "172.17.0.1"}]


def test_portal_finds_weather_and_stocks_through_consul(plan):
    portal = container(plan, "portal")
    assert env(portal)["CONSUL_HTTP_ADDR"] == "consul-agent:8500"
    assert "WEATHER_URL" not in env(portal) and "STOCKS_URL" not in env(portal)
    for backend in ("weather", "stocks"):
        registrar = env(container(plan, f"{backend}-registrar"))
        assert (registrar["REGISTRAR_SERVICE"], registrar["REGISTRAR_CONTAINER"]) == (backend, backend)
        assert registrar["REGISTRAR_CONTAINER_PORT"] == "8080"
    broker = env(container(plan, "rabbitmq-registrar"))
    assert (broker["REGISTRAR_SERVICE"], broker["REGISTRAR_CONTAINER_PORT"], broker["REGISTRAR_CHECK"]) == (
        "rabbitmq",
        "5672",
        "tcp",
    )


def test_the_agent_daemon_uses_host_networking_on_every_instance(plan):
    (task,) = [t for t, d in containers(plan) if d["name"] == "consul-agent"]
    assert task["inputs"]["networkMode"] == "host"
    service = [
        s for s in plan.of_type("aws:ecs/service:Service") if s["inputs"]["taskDefinition"] == task["outputs"]["arn"]
    ]
    assert [s["inputs"]["schedulingStrategy"] for s in service] == ["DAEMON"]


def test_consul_servers_follow_the_stack(dev_plan, prod_plan):
    for plan, count in ((dev_plan, 1), (prod_plan, 3)):
        group = plan.within("seaport:index:ConsulMesh", "aws:autoscaling/group:Group")["inputs"]
        assert group["minSize"] == group["maxSize"] == group["desiredCapacity"] == count


def test_exports(plan):
    outputs = plan.outputs
    assert outputs["portalUrl"].startswith("http://")
    assert outputs["consulUiUrl"].endswith("/ui/")
    assert outputs["brokerEndpoint"] == "consul:rabbitmq"
    assert outputs["clusterName"]
    assert set(outputs["imageDigests"]) == {"send", "receive", "portal", "weather", "stocks", "registrar"}
    assert all("@sha256:" in d for d in outputs["imageDigests"].values())


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
            assert env(definition).pop("RABBITMQ_URL").startswith("amqps://")
            changed = {k for k in set(env(definition)) | set(env(old)) if env(definition).get(k) != env(old).get(k)}
            assert changed == {"RABBITMQ_URL", "RABBITMQ_SERVICE"}
            definition, old = dict(definition, environment=[]), dict(old, environment=[])
        assert definition == old, name
    assert dev_amazonmq_plan.outputs["brokerEndpoint"].startswith("amqps://")


def test_amazonmq_broker_admits_only_the_cluster(dev_amazonmq_plan):
    cluster = _group_of(dev_amazonmq_plan, "seaport-instances")
    broker_group = _group_of(dev_amazonmq_plan, "messaging-broker")
    rules = [
        r["inputs"]
        for r in dev_amazonmq_plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r["inputs"]["securityGroupId"] == broker_group
    ]
    assert rules == [
        {
            "securityGroupId": broker_group,
            "referencedSecurityGroupId": cluster,
            "ipProtocol": "tcp",
            "fromPort": 5671,
            "toPort": 5671,
            "description": "AMQPS from the cluster's instances",
        }
    ]
