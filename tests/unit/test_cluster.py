"""EcsCluster: AMI, launch template, user data, IAM, ASG, capacity provider, outputs."""

import base64
import json
import shutil
import subprocess

import pytest
from seaport import EcsCluster, InvalidArgument
from seaport.cluster import AMI_PARAMETERS, user_data
from seaport.tools.testing import SeaportMocks, _ssm_parameter, run

SUBNETS = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
BASE = {"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": SUBNETS}


def plan_of(name="app", **args):
    return run(lambda: EcsCluster(name, {**BASE, **args}))


@pytest.fixture(scope="module")
def plan():
    return plan_of(min_size=2, max_size=6, tags={"team": "platform"})


def launch_template(plan):
    return plan.one("aws:ec2/launchTemplate:LaunchTemplate")["inputs"]


@pytest.mark.parametrize(("instance_type", "arch"), [("t3.small", "x86_64"), ("m7g.large", "arm64")])
def test_ami_comes_from_the_public_ssm_parameter_for_the_architecture(instance_type, arch):
    expected = _ssm_parameter(SeaportMocks(), {"name": AMI_PARAMETERS[arch]})["value"]
    assert launch_template(plan_of(instance_type=instance_type))["imageId"] == expected
    assert "amazon-linux-2023" in AMI_PARAMETERS[arch]


def test_launch_template_requires_imdsv2_with_hop_limit_one(plan):
    options = launch_template(plan)["metadataOptions"]
    assert options["httpTokens"] == "required"
    assert options["httpEndpoint"] == "enabled"
    assert options["httpPutResponseHopLimit"] == 1


def test_root_volume_is_encrypted_gp3(plan):
    (mapping,) = launch_template(plan)["blockDeviceMappings"]
    assert mapping["deviceName"] == "/dev/xvda"
    assert mapping["ebs"] == {"volumeType": "gp3", "volumeSize": 30, "encrypted": "true", "deleteOnTermination": "true"}


def test_no_key_pair_no_ingress_no_port_22(plan):
    template = launch_template(plan)
    assert "keyName" not in template
    group = plan.one("aws:ec2/securityGroup:SecurityGroup")
    # The one ingress rule: tasks of this cluster reach each other's dynamic host ports.
    (rule,) = plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rule["inputs"]["securityGroupId"] == rule["inputs"]["referencedSecurityGroupId"] == group["outputs"]["id"]
    assert (rule["inputs"]["fromPort"], rule["inputs"]["toPort"]) == (32768, 65535)
    assert "cidrIpv4" not in rule["inputs"]
    assert not group["inputs"].get("ingress")
    assert template["networkInterfaces"][0]["securityGroups"] == [group["outputs"]["id"]]
    (egress,) = plan.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    assert egress["inputs"]["securityGroupId"] == group["outputs"]["id"]


def test_public_ip_only_when_asked():
    assert launch_template(plan_of())["networkInterfaces"][0]["associatePublicIpAddress"] == "false"
    assert launch_template(plan_of(public_ip=True))["networkInterfaces"][0]["associatePublicIpAddress"] == "true"


def test_user_data_only_joins_the_cluster(plan):
    script = base64.b64decode(launch_template(plan)["userData"]).decode()
    cluster = plan.one("aws:ecs/cluster:Cluster")
    assert f"ECS_CLUSTER={cluster['outputs']['name']}\n" in script
    assert script.startswith("#!/bin/bash\n")
    for foreign in ("consul", "docker run", "rabbitmq", "ssh", "curl"):
        assert foreign not in script.lower()


def test_user_data_passes_shellcheck():
    assert shutil.which("shellcheck"), "shellcheck is missing: make sysdeps installs it"
    result = subprocess.run(
        ["shellcheck", "--shell=bash", "--severity=style", "-"],
        input=user_data("app-1234567"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


def test_instance_role_has_ecs_and_ssm_policies_and_a_profile(plan):
    role = plan.one("aws:iam/role:Role")
    trust = json.loads(role["inputs"]["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = {a["inputs"]["policyArn"] for a in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert attached == {
        "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    }
    profile = plan.one("aws:iam/instanceProfile:InstanceProfile")
    assert profile["inputs"]["role"] == role["outputs"]["name"]
    assert launch_template(plan)["iamInstanceProfile"]["arn"] == profile["outputs"]["arn"]


def test_autoscaling_group_spans_the_subnets_and_is_ecs_managed(plan):
    group = plan.one("aws:autoscaling/group:Group")["inputs"]
    template = plan.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert group["vpcZoneIdentifiers"] == SUBNETS
    assert (group["minSize"], group["maxSize"]) == (2, 6)
    assert group["launchTemplate"]["id"] == template["outputs"]["id"]
    assert group["protectFromScaleIn"] is True
    tags = {t["key"]: t for t in group["tags"]}
    assert tags["AmazonECSManaged"]["value"] == "true" and tags["AmazonECSManaged"]["propagateAtLaunch"]
    assert tags["team"]["value"] == "platform"


def test_capacity_provider_manages_scaling_and_draining_and_is_the_default(plan):
    group = plan.one("aws:autoscaling/group:Group")
    provider = plan.one("aws:ecs/capacityProvider:CapacityProvider")
    asg = provider["inputs"]["autoScalingGroupProvider"]
    assert asg["autoScalingGroupArn"] == group["outputs"]["arn"]
    assert asg["managedScaling"]["status"] == "ENABLED"
    assert asg["managedScaling"]["targetCapacity"] == 100
    assert asg["managedDraining"] == "ENABLED"
    assert asg["managedTerminationProtection"] == "ENABLED"
    association = plan.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")["inputs"]
    cluster = plan.one("aws:ecs/cluster:Cluster")
    assert association["clusterName"] == cluster["outputs"]["name"]
    assert association["capacityProviders"] == [provider["outputs"]["name"]]
    (strategy,) = association["defaultCapacityProviderStrategies"]
    assert strategy["capacityProvider"] == provider["outputs"]["name"] and strategy["weight"] == 1


@pytest.mark.parametrize(("enabled", "value"), [(True, "enabled"), (False, "disabled")])
def test_container_insights_switch(enabled, value):
    cluster = plan_of(container_insights=enabled).one("aws:ecs/cluster:Cluster")
    assert cluster["inputs"]["settings"] == [{"name": "containerInsights", "value": value}]


def test_outputs_name_the_created_resources(plan):
    outputs = plan.one("seaport:index:EcsCluster")["outputs"]
    cluster = plan.one("aws:ecs/cluster:Cluster")["outputs"]
    assert outputs["cluster_name"] == cluster["name"]
    assert outputs["cluster_arn"] == cluster["arn"]
    assert outputs["capacity_provider_name"] == plan.one("aws:ecs/capacityProvider:CapacityProvider")["outputs"]["name"]
    assert outputs["instance_security_group_id"] == plan.one("aws:ec2/securityGroup:SecurityGroup")["outputs"]["id"]
    assert outputs["autoscaling_group_name"] == plan.one("aws:autoscaling/group:Group")["outputs"]["name"]


def test_every_child_is_parented_to_the_component(plan):
    component = plan.one("seaport:index:EcsCluster")
    custom = [r for r in plan.resources if r["custom"]]
    assert custom and all(r["parent"] == component["urn"] for r in custom)


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("app", {"instance_type": "big"}, "instance_type='big' is not an EC2 instance type"),
        ("app", {"min_size": 3, "max_size": 2}, "max_size=2 must be between 3 and 100"),
        ("app", {"root_volume_size_gib": 8}, "root_volume_size_gib=8 must be between 30 and 16384"),
        ("app", {"target_capacity_percent": 0}, "target_capacity_percent=0 must be between 1 and 100"),
        ("app", {"subnet_ids": None}, "subnet_ids is required"),
        ("ecs-main", {}, "must not start with aws, ecs or fargate"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(name, args, message):
    seen = {}

    def program():
        try:
            EcsCluster(name, {**BASE, **args})
        except InvalidArgument as error:
            seen["error"] = str(error)

    plan = run(program)
    assert message in seen["error"]
    assert plan.resources == []
