"""The offline plan: resources.json format, diagrams, summary, and `make plan` errors."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.unit.conftest import REPO

RECORD_KEYS = {"urn", "type", "name", "parent", "custom", "inputs", "outputs", "dependencies"}


def synth_cli(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "seaport.tools.synth", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def dev_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "dev"
    result = synth_cli("--stack", "dev", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_resources_json_has_the_documented_shape(dev_files):
    out, _ = dev_files
    document = json.loads((out / "resources.json").read_text())
    assert set(document) == {"project", "stack", "resources", "outputs"}
    assert (document["project"], document["stack"]) == ("seaport", "dev")
    urns = {r["urn"] for r in document["resources"]}
    for r in document["resources"]:
        assert RECORD_KEYS <= set(r) <= RECORD_KEYS | {"additionalSecretOutputs"}
        assert r["urn"].startswith("urn:pulumi:dev::seaport::")
        assert r["parent"] is None or r["parent"] in urns or r["parent"].endswith("pulumi:pulumi:Stack::seaport-dev")
        assert set(r["dependencies"]) <= urns and r["urn"] not in r["dependencies"]
    assert document["outputs"]["clusterName"]


def test_dev_plan_has_cluster_asg_capacity_provider_and_imdsv2(dev_plan):
    dev_plan.one("aws:ecs/cluster:Cluster")
    dev_plan.named("seaport-instances", "aws:autoscaling/group:Group")
    dev_plan.one("aws:ecs/capacityProvider:CapacityProvider")
    templates = dev_plan.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert len(templates) == 3  # the cluster's, its dedicated broker instance's and the Consul servers'
    assert all(t["inputs"]["metadataOptions"]["httpTokens"] == "required" for t in templates)


@pytest.mark.parametrize("stack", ["dev_plan", "prod_plan"])
def test_no_rule_opens_port_22(stack, request):
    plan = request.getfixturevalue(stack)
    rules = plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    for rule in rules:
        low, high = rule["inputs"].get("fromPort", 0), rule["inputs"].get("toPort", 65535)
        assert rule["inputs"]["ipProtocol"] != "-1" or rule["inputs"].get("referencedSecurityGroupId")
        assert not low <= 22 <= high, rule["name"]
    for group in plan.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert not group["inputs"].get("ingress"), f"{group['name']} has inline rules"


@pytest.mark.parametrize("stack", ["dev_plan", "prod_plan"])
def test_ids_and_arns_are_unique_and_every_resource_sits_in_a_component(stack, request):
    plan = request.getfixturevalue(stack)
    custom = [r for r in plan.resources if r["custom"]]
    ids = [r["outputs"]["id"] for r in custom if r["outputs"]["id"] not in ("none",)]
    # (a secret version's ARN is its secret's, as in AWS)
    arns = [r["outputs"]["arn"] for r in custom if r["outputs"].get("arn") and "secretVersion" not in r["type"]]
    assert len(ids) == len(set(ids))
    assert len(arns) == len(set(arns))
    components = {r["urn"] for r in plan.resources if not r["custom"]}
    assert all(r["parent"] in components for r in custom)


def test_prod_spans_three_azs_with_private_instances(prod_plan):
    subnets = prod_plan.of_type("aws:ec2/subnet:Subnet")
    private = [s["outputs"]["id"] for s in subnets if s["inputs"]["tags"]["seaport:tier"] == "private"]
    assert len(subnets) == 6 and len(prod_plan.of_type("aws:ec2/natGateway:NatGateway")) == 3
    group = prod_plan.named("seaport-instances", "aws:autoscaling/group:Group")
    assert group["inputs"]["vpcZoneIdentifiers"] == private


def test_plan_is_deterministic(dev_plan):
    from seaport.tools.synth import synth

    again = synth(REPO, "dev")
    assert json.dumps(again.to_json(), default=str) == json.dumps(dev_plan.to_json(), default=str)


def test_the_diagram_shows_the_system_its_users_know(dev_files):
    """Internet -> ALB -> portal -> weather and stocks; send -> broker -> receive; agents -> servers."""
    out, _ = dev_files
    mermaid = (out / "system.mmd").read_text()
    assert mermaid.startswith("flowchart LR")
    arrows = dict(
        ((source, target), label)
        for source, label, target in re.findall(r"^\s*(\w+) -->\|\"([^\"]*)\"\| (\w+)$", mermaid, re.M)
    )
    expected = {
        ("internet", "loadbalancer_portal_alb"): "tcp 80",
        ("loadbalancer_portal_alb", "service_portal"): "container port 8080",
        ("service_portal", "service_weather"): "weather found through Consul",
        ("service_portal", "service_stocks"): "stocks found through Consul",
        ("service_messaging_send", "service_messaging_broker"): "rabbitmq found through Consul, container port 5671",
        ("service_messaging_broker", "service_messaging_receive"): "deliveries",
        ("service_consul_agent", "group_consul_servers"): "tcp 8300",
    }
    for arrow, text in expected.items():
        assert arrow in arrows, f"no arrow {arrow[0]} -> {arrow[1]}"
        assert text in arrows[arrow], arrows[arrow]
    assert "sg seaport-instances from sg portal-alb" in arrows[("loadbalancer_portal_alb", "service_portal")]
    # each component once: one node per ECS service, no resource-graph boxes
    assert mermaid.count('service_portal["') == 1
    assert "<i>" not in mermaid
    assert "digraph system" in (out / "system.dot").read_text()
    # The test environment installs Graphviz (make sysdeps, .ci/run): the SVG must be there.
    assert shutil.which("dot"), "Graphviz is missing: run `make sysdeps`"
    assert (out / "system.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def test_summary_lists_counts_and_exports(dev_files):
    _, stdout = dev_files
    assert "resources in" in stdout
    assert "ecs.Cluster" in stdout
    assert "Exports:" in stdout and "clusterName" in stdout
    assert len(stdout.splitlines()) < 60


def _project_copy(tmp_path, stack_yaml):
    for name in ("Pulumi.yaml", "__main__.py", "settings.py"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "Pulumi.bad.yaml").write_text(stack_yaml)
    return tmp_path


def test_bad_setting_exits_nonzero_with_the_settings_error_and_no_traceback(tmp_path):
    project = _project_copy(tmp_path, "config:\n  seaport:minTasks: 5\n  seaport:maxTasks: 3\n")
    result = synth_cli("--stack", "bad", "--out", str(tmp_path / "out"), "--project-dir", str(project))
    assert result.returncode == 2
    assert "seaport:minTasks=5 must be <= seaport:maxTasks=3" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "out").exists()


def test_unknown_setting_is_reported(tmp_path):
    project = _project_copy(tmp_path, "config:\n  seaport:azcount: 3\n")
    result = synth_cli("--stack", "bad", "--out", str(tmp_path / "out"), "--project-dir", str(project))
    assert result.returncode == 2
    assert "seaport:azcount (in Pulumi.bad.yaml) is not a setting declared in Pulumi.yaml" in result.stderr


def test_missing_stack_file_is_reported():
    result = synth_cli("--stack", "nope", "--out", "build/nope")
    assert result.returncode == 2 and "no stack file Pulumi.nope.yaml" in result.stderr


def test_dev_plan_has_the_load_balanced_step_scaled_portal(dev_plan):
    web = "seaport:index:ScaledWebService"
    balancers = dev_plan.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert [b["inputs"]["internal"] for b in balancers] == [False]  # the portal's, and no other
    dev_plan.within(web, "aws:lb/loadBalancer:LoadBalancer")
    assert dev_plan.within(web, "aws:lb/targetGroup:TargetGroup")["inputs"]["targetType"] == "instance"
    service = dev_plan.within(web, "aws:ecs/service:Service")
    task = dev_plan.referenced(service["inputs"]["taskDefinition"])
    definitions = json.loads(task["inputs"]["containerDefinitions"])
    assert definitions[0]["portMappings"][0]["hostPort"] == 0
    scaler = dev_plan.one("seaport:index:ScaledWebService")
    policies = dev_plan.children(scaler, "aws:appautoscaling/policy:Policy")
    adjustments = sorted(
        s["scalingAdjustment"]
        for p in policies
        for s in p["inputs"]["stepScalingPolicyConfiguration"]["stepAdjustments"]
    )
    assert adjustments == [-1, 1]
    alarms = dev_plan.children(scaler, "aws:cloudwatch/metricAlarm:MetricAlarm")
    assert sorted(a for alarm in alarms for a in alarm["inputs"]["alarmActions"]) == sorted(
        p["outputs"]["arn"] for p in policies
    )
    (high,) = [a for a in alarms if a["inputs"]["comparisonOperator"] == "GreaterThanOrEqualToThreshold"]
    assert high["inputs"]["period"] * high["inputs"]["evaluationPeriods"] <= 120


def test_prod_plan_uses_target_tracking(prod_plan):
    scaler = prod_plan.one("seaport:index:ScaledWebService")
    (policy,) = prod_plan.children(scaler, "aws:appautoscaling/policy:Policy")
    assert policy["inputs"]["policyType"] == "TargetTrackingScaling"
    assert not prod_plan.children(scaler, "aws:cloudwatch/metricAlarm:MetricAlarm")  # AWS manages them
