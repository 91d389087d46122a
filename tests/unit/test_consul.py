"""ConsulMesh: servers, ACLs, gossip key, security groups, agent daemon, registrar sidecar, user data."""

import base64
import json
import shutil
import subprocess

import pytest
from seaport import ConsulMesh, ContainerService, InvalidArgument
from seaport.consul import ACL_POLICIES, AGENT_ADDRESS, agent_config, server_config, server_user_data
from seaport.tools.testing import run

BASE = {
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "cluster_arn": "arn:aws:ecs:us-east-1:123456789012:cluster/main-1234567",
    "instance_security_group_id": "sg-0123456789abcdef0",
    "registrar_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/registrar@sha256:" + "b" * 64,
}
ARNS = {
    k: f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{k}-AbCdEf"
    for k in ("gossip", "management", "agent", "registrar", "reader")
}


@pytest.fixture(scope="module")
def mesh_plan():
    def program():
        mesh = ConsulMesh("consul", {**BASE, "server_count": 3, "consul_version": "1.21.5"})
        ContainerService(
            "web",
            {
                "cluster_arn": BASE["cluster_arn"],
                "container": {"image": "nginx:1.27", "port": 8080},
                "sidecars": [mesh.registrar("web", "web", 8080)],
            },
        )

    return run(program)


def shellcheck(script):
    assert shutil.which("shellcheck"), "shellcheck is missing: make sysdeps installs it"
    result = subprocess.run(["shellcheck", "--shell=bash", "-"], input=script, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def user_data(plan):
    template = plan.within("seaport:index:ConsulMesh", "aws:ec2/launchTemplate:LaunchTemplate")
    return base64.b64decode(template["inputs"]["userData"]).decode()


def test_server_user_data_passes_shellcheck(mesh_plan):
    shellcheck(user_data(mesh_plan))


def test_server_user_data_installs_the_pinned_release_and_reads_secrets_at_boot(mesh_plan):
    script = user_data(mesh_plan)
    assert 'CONSUL_VERSION="1.21.5"' in script and 'dnf install -y "consul-$CONSUL_VERSION"' in script
    for secret in mesh_plan.of_type("aws:secretsmanager/secret:Secret"):
        assert f"secret {secret['outputs']['arn']}" in script  # by ARN, never by value
    for version in mesh_plan.of_type("aws:secretsmanager/secretVersion:SecretVersion"):
        assert version["inputs"]["secretString"] == "[secret]"


def test_server_config_is_json_rendered_from_python_data(mesh_plan):
    script = user_data(mesh_plan)
    config_text = script.split("<<'CONFIG'\n", 1)[1].split("\nCONFIG\n", 1)[0]
    config = json.loads(config_text)
    assert config == server_config(3, "dc1", config["retry_join"])
    assert config["bootstrap_expect"] == 3 and config["server"] is True
    assert config["acl"] == {"enabled": True, "default_policy": "deny", "enable_token_persistence": True}
    (join,) = config["retry_join"]
    assert join == "provider=aws region=us-east-1 tag_key=seaport-consul-join tag_value=seaport-test-consul"


def test_acl_policies_are_created_for_agent_registrar_and_reader(mesh_plan):
    script = user_data(mesh_plan)
    for policy, rules in ACL_POLICIES.items():
        text = script.split(f"cat > /etc/consul.d/acl/{policy}.json <<'RULES'\n", 1)[1].split("\nRULES\n", 1)[0]
        assert json.loads(text) == rules
        assert f"ensure_token {policy} " in script
    assert ACL_POLICIES["reader"]["service_prefix"][""]["policy"] == "read"
    assert ACL_POLICIES["registrar"]["service_prefix"][""]["policy"] == "write"


def test_servers_join_by_tag_and_run_with_least_privilege(mesh_plan):
    group = mesh_plan.within("seaport:index:ConsulMesh", "aws:autoscaling/group:Group")["inputs"]
    tags = {t["key"]: t["value"] for t in group["tags"]}
    assert tags["seaport-consul-join"] == "seaport-test-consul"
    assert group["minSize"] == group["maxSize"] == 3
    (policy,) = [p for p in mesh_plan.of_type("aws:iam/rolePolicy:RolePolicy") if p["name"] == "consul-server"]
    statements = json.loads(policy["inputs"]["policy"])["Statement"]
    by_action = {a: s["Resource"] for s in statements for a in s["Action"]}
    assert set(by_action) == {"ec2:DescribeInstances", "secretsmanager:GetSecretValue"}
    assert sorted(by_action["secretsmanager:GetSecretValue"]) == sorted(
        s["outputs"]["arn"] for s in mesh_plan.of_type("aws:secretsmanager/secret:Secret")
    )
    template = mesh_plan.within("seaport:index:ConsulMesh", "aws:ec2/launchTemplate:LaunchTemplate")["inputs"]
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
    assert "keyName" not in template


def test_gossip_key_is_32_random_bytes_in_secrets_manager(mesh_plan):
    key = mesh_plan.one("random:index/randomBytes:RandomBytes")
    assert key["inputs"]["length"] == 32
    secrets = {s["name"] for s in mesh_plan.of_type("aws:secretsmanager/secret:Secret")}
    assert secrets == {
        f"consul-{n}" for n in ("gossip-key", "management-token", "agent-token", "registrar-token", "reader-token")
    }


def test_consul_ports_admit_only_the_cluster_and_server_groups(mesh_plan):
    servers = mesh_plan.named("consul-servers", "aws:ec2/securityGroup:SecurityGroup")["outputs"]["id"]
    ui = mesh_plan.named("consul-ui", "aws:ec2/securityGroup:SecurityGroup")["outputs"]["id"]
    cluster = BASE["instance_security_group_id"]
    rules = [r["inputs"] for r in mesh_plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")]
    assert all("cidrIpv4" not in r and "cidrIpv6" not in r for r in rules)
    on_servers = {
        (r["fromPort"], r["ipProtocol"], r["referencedSecurityGroupId"])
        for r in rules
        if r["securityGroupId"] == servers
    }
    expected = {
        (p, proto, src)
        for p, proto in [(8300, "tcp"), (8301, "tcp"), (8301, "udp"), (8500, "tcp"), (8600, "tcp"), (8600, "udp")]
        for src in (cluster, servers)
    }
    assert on_servers == expected | {(8500, "tcp", ui)}
    on_cluster = {
        (r["fromPort"], r["ipProtocol"], r["referencedSecurityGroupId"])
        for r in rules
        if r["securityGroupId"] == cluster
    }
    assert on_cluster == {
        (8301, "tcp", cluster),
        (8301, "udp", cluster),
        (8301, "tcp", servers),
        (8301, "udp", servers),
    }


def test_ui_is_behind_an_internal_load_balancer(mesh_plan):
    balancer = mesh_plan.one("aws:lb/loadBalancer:LoadBalancer")["inputs"]
    assert balancer["internal"] is True
    outputs = mesh_plan.one("seaport:index:ConsulMesh")["outputs"]
    assert outputs["ui_url"].startswith("http://") and outputs["ui_url"].endswith("/ui/")


def test_agent_daemon_in_host_mode_with_pinned_image_and_secrets(mesh_plan):
    task = mesh_plan.named("consul-agent-task", "aws:ecs/taskDefinition:TaskDefinition")["inputs"]
    assert task["networkMode"] == "host"
    (agent,) = json.loads(task["containerDefinitions"])
    assert agent["image"].startswith("hashicorp/consul:1.21.5@sha256:")
    assert {s["name"] for s in agent["secrets"]} == {"CONSUL_GOSSIP_ENCRYPTION", "CONSUL_AGENT_ACL"}
    (variable,) = agent["environment"]
    config = json.loads(variable["value"])
    assert variable["name"] == "CONSUL_LOCAL_CONFIG" and config == agent_config("dc1", config["retry_join"])
    assert config["server"] is False and config["acl"]["default_policy"] == "deny"
    assert "docker0" in config["client_addr"] and "0.0.0.0" not in config["client_addr"]
    service = mesh_plan.named("consul-agent", "aws:ecs/service:Service")["inputs"]
    assert service["schedulingStrategy"] == "DAEMON"
    (policy,) = [p for p in mesh_plan.of_type("aws:iam/rolePolicy:RolePolicy") if p["name"] == "consul-agent-task"]
    assert json.loads(policy["inputs"]["policy"])["Statement"] == [
        {"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": ["*"]}
    ]


def test_registrar_sidecar_makes_a_container_discoverable(mesh_plan):
    task = mesh_plan.named("web-task", "aws:ecs/taskDefinition:TaskDefinition")["inputs"]
    _web, registrar = json.loads(task["containerDefinitions"])
    assert registrar["name"] == "web-registrar" and registrar["essential"] is True
    assert registrar["image"] == BASE["registrar_image"]
    variables = {e["name"]: e["value"] for e in registrar["environment"]}
    assert variables == {
        "REGISTRAR_SERVICE": "web",
        "REGISTRAR_CONTAINER": "web",
        "REGISTRAR_CONTAINER_PORT": "8080",
        "REGISTRAR_CHECK": "http:/health",
        "CONSUL_HTTP_ADDR": AGENT_ADDRESS,
    }
    token = mesh_plan.named("consul-registrar-token", "aws:secretsmanager/secret:Secret")["outputs"]["arn"]
    assert registrar["secrets"] == [{"name": "CONSUL_HTTP_TOKEN", "valueFrom": token}]
    assert registrar["extraHosts"] == [{"hostname": "consul-agent", "ipAddress": "172.17.0.1"}]
    assert registrar["dependsOn"] == [{"containerName": "web", "condition": "START"}]


def test_user_data_for_any_arns_is_lint_clean():
    shellcheck(server_user_data("1.21.5", server_config(1, "dc1", ["provider=aws tag_key=k tag_value=v"]), ARNS))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"server_count": 2}, "server_count=2 must be one of 1, 3, 5"),
        ({"consul_version": "1.21"}, "consul_version='1.21' must be an exact release"),
        ({"registrar_image": None}, "registrar_image is required"),
        ({"server_instance_type": "tiny"}, "is not an EC2 instance type"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(args, message):
    seen = {}

    def program():
        try:
            ConsulMesh("consul", {**BASE, **args})
        except InvalidArgument as error:
            seen["error"] = str(error)

    plan = run(program)
    assert message in seen["error"]
    assert plan.resources == []
