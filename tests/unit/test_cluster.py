"""EcsCluster: AMI, launch template, user data, IAM, ASG, capacity provider, reference and bad arguments."""

import base64
import json
import shutil
import subprocess

import pytest

from seaport import EcsCluster, InvalidArgument, Network
from seaport.cluster import AMI_PARAMETERS, user_data
from seaport.tools import sdk
from seaport.tools.mocks import SeaportMocks, _ssm_parameter
from seaport.tools.testing import run
from tests.unit.references import NETWORK, PRIVATE_SUBNETS
from tests.unit.refusals import assert_refused, refused_paths

WITHOUT_SUBNETS = {key: value for key, value in NETWORK.items() if key != "instance_subnet_ids"}


def plan_of(name="app", mocks=None, **args):
    return run(lambda: EcsCluster(name, {"network": NETWORK, **args}), mocks=mocks)


@pytest.fixture(scope="module")
def plan():
    return plan_of(min_instances=2, max_instances=6, tags={"team": "platform"})


def launch_template(plan):
    return plan.one("aws:ec2/launchTemplate:LaunchTemplate")["inputs"]


class SensitiveParameterMocks(SeaportMocks):
    """getParameter as the AWS provider answers it: ``value`` is sensitive (a secret), ``insecureValue`` is not,
    and the two differ here so the test can tell which one the cluster used."""

    def call(self, args):
        result, failures = super().call(args)
        if args.token == "aws:ssm/getParameter:getParameter":
            result = {**result, "value": sdk.as_secret("ami-00000000000000000")}
        return result, failures


@pytest.mark.parametrize(("instance_type", "arch"), [("t3.small", "x86_64"), ("m7g.large", "arm64")])
def test_ami_comes_from_the_public_ssm_parameter_for_the_architecture(instance_type, arch):
    expected = _ssm_parameter(SeaportMocks(), {"name": AMI_PARAMETERS[arch]})["insecureValue"]
    assert launch_template(plan_of(instance_type=instance_type))["imageId"] == expected
    assert "amazon-linux-2023" in AMI_PARAMETERS[arch]


def test_the_ami_id_stays_readable_in_the_plan():
    """The parameter's insecure value, never "[secret]": a previewed AMI change must be visible."""
    image_id = launch_template(plan_of())["imageId"]
    assert image_id != "[secret]" and image_id.startswith("ami-")


def test_the_ami_id_stays_readable_when_the_provider_marks_the_parameter_value_secret():
    """AWS's getParameter marks ``value`` sensitive, and an invoke result with one secret field is secret as a
    whole in the Python SDK: reading ``.insecure_value`` off that result is not enough on its own."""
    expected = _ssm_parameter(SeaportMocks(), {"name": AMI_PARAMETERS["x86_64"]})["insecureValue"]
    assert launch_template(plan_of(mocks=SensitiveParameterMocks()))["imageId"] == expected


def test_launch_template_requires_imdsv2_with_hop_limit_one(plan):
    options = launch_template(plan)["metadataOptions"]
    assert options["httpTokens"] == "required"
    assert options["httpEndpoint"] == "enabled"
    assert options["httpPutResponseHopLimit"] == 1


def test_root_volume_is_encrypted_gp3(plan):
    (mapping,) = launch_template(plan)["blockDeviceMappings"]
    assert mapping["deviceName"] == "/dev/xvda"
    assert mapping["ebs"] == {"volumeType": "gp3", "volumeSize": 30, "encrypted": "true", "deleteOnTermination": "true"}
    (bigger,) = launch_template(plan_of(root_volume_size_gib=100))["blockDeviceMappings"]
    assert bigger["ebs"]["volumeSize"] == 100


def test_no_key_pair_no_ingress_no_port_22(plan):
    template = launch_template(plan)
    assert "keyName" not in template
    group = plan.one("aws:ec2/securityGroup:SecurityGroup")
    assert group["inputs"]["vpcId"] == NETWORK["vpc_id"]
    # The one ingress rule: tasks of this cluster reach each other's dynamic host ports.
    (rule,) = plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rule["inputs"]["securityGroupId"] == rule["inputs"]["referencedSecurityGroupId"] == group["outputs"]["id"]
    assert (rule["inputs"]["fromPort"], rule["inputs"]["toPort"]) == (32768, 65535)
    assert "cidrIpv4" not in rule["inputs"]
    assert not group["inputs"].get("ingress")
    assert template["networkInterfaces"][0]["securityGroups"] == [group["outputs"]["id"]]
    (egress,) = plan.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    assert egress["inputs"]["securityGroupId"] == group["outputs"]["id"]


@pytest.mark.parametrize(("needs_public_ip", "expected"), [(False, "false"), (True, "true")])
def test_public_ip_follows_the_network_reference(needs_public_ip, expected):
    network = {**NETWORK, "instances_need_public_ip": needs_public_ip}
    plan = run(lambda: EcsCluster("app", {"network": network}))
    assert launch_template(plan)["networkInterfaces"][0]["associatePublicIpAddress"] == expected


@pytest.mark.parametrize(("private", "expected"), [(False, "true"), (True, "false")])
def test_public_ip_only_without_private_subnets_of_a_network_in_the_same_program(private, expected):
    def program():
        network = Network("net", {"private_subnets": private})
        EcsCluster("app", {"network": network.reference})

    plan = run(program)
    assert launch_template(plan)["networkInterfaces"][0]["associatePublicIpAddress"] == expected
    tier = "private" if private else "public"
    subnets = sorted(
        (s for s in plan.of_type("aws:ec2/subnet:Subnet") if f"-{tier}-" in s["name"]), key=lambda s: s["name"]
    )
    group = plan.one("aws:autoscaling/group:Group")["inputs"]
    assert group["vpcZoneIdentifiers"] == [s["outputs"]["id"] for s in subnets]


def test_user_data_only_joins_the_cluster_and_guards_the_metadata_service(plan):
    script = base64.b64decode(launch_template(plan)["userData"]).decode()
    cluster = plan.one("aws:ecs/cluster:Cluster")
    assert f"ECS_CLUSTER={cluster['outputs']['name']}\n" in script
    assert script.startswith("#!/bin/bash\n")
    commands = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    for foreign in ("consul", "docker run", "rabbitmq", "ssh", "curl"):
        assert foreign not in commands.lower()
    # host-network containers get task-role credentials from the ECS agent, never the instance role
    assert "ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST=true" in script
    for uid in (100, 999):
        assert (
            f"ExecStart=/usr/sbin/iptables -w -I OUTPUT -d 169.254.169.254/32 -m owner --uid-owner {uid} -j REJECT"
            in script
        )


def test_the_metadata_guard_runs_before_any_container_at_every_boot():
    script = user_data("app-1234567", blocked_uids=[100])
    unit = script.split("<<'UNIT'\n", 1)[1].split("\nUNIT\n", 1)[0]
    assert "Before=docker.service ecs.service" in unit
    assert "Type=oneshot" in unit and "RemainAfterExit=yes" in unit
    assert "WantedBy=multi-user.target" in unit
    assert "systemctl enable --now seaport-metadata-guard.service" in script
    assert "metadata" not in user_data("app-1234567", blocked_uids=[]).split("ECS_CLUSTER", 1)[1]


def test_the_default_blocked_uids_are_the_host_network_containers_users():
    from seaport import consul_config, rabbitmq_config
    from seaport.cluster import DEFAULTS

    assert DEFAULTS["metadata_blocked_uids"] == [consul_config.AGENT_UID, rabbitmq_config.RABBITMQ_UID]


def test_a_bad_blocked_uid_is_refused():
    error = run(
        lambda: EcsCluster("app", {"network": NETWORK, "metadata_blocked_uids": [100, 0]}), expect=InvalidArgument
    )
    assert "metadata_blocked_uids[1]=0 must be between 1 and" in str(error)


def test_user_data_passes_shellcheck():
    assert shutil.which("shellcheck"), "shellcheck is missing: make sysdeps installs it"
    result = subprocess.run(
        ["shellcheck", "--shell=bash", "--severity=style", "-"],
        input=user_data("app-1234567", {"seaport.dedicated": "broker-1"}, [100, 999]),
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


def test_autoscaling_group_spans_the_instance_subnets_and_is_ecs_managed(plan):
    group = plan.one("aws:autoscaling/group:Group")["inputs"]
    template = plan.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert group["vpcZoneIdentifiers"] == PRIVATE_SUBNETS  # NETWORK's instance subnets
    assert (group["minSize"], group["maxSize"]) == (2, 6)
    assert group["launchTemplate"]["id"] == template["outputs"]["id"]
    assert group["protectFromScaleIn"] is True
    tags = {t["key"]: t for t in group["tags"]}
    assert tags["AmazonECSManaged"]["value"] == "true" and tags["AmazonECSManaged"]["propagateAtLaunch"]
    assert tags["team"]["value"] == "platform" and tags["team"]["propagateAtLaunch"]


def test_instance_refresh_keeps_the_full_capacity_running(plan):
    refresh = plan.one("aws:autoscaling/group:Group")["inputs"]["instanceRefresh"]
    assert refresh["strategy"] == "Rolling"
    preferences = refresh["preferences"]
    # A replacement starts before an old instance drains: never fewer healthy instances than before.
    assert (preferences["minHealthyPercentage"], preferences["maxHealthyPercentage"]) == (100, 200)
    assert preferences["scaleInProtectedInstances"] == "Refresh"


def test_capacity_provider_manages_scaling_and_draining_and_is_the_default(plan):
    group = plan.one("aws:autoscaling/group:Group")
    provider = plan.one("aws:ecs/capacityProvider:CapacityProvider")
    asg = provider["inputs"]["autoScalingGroupProvider"]
    assert asg["autoScalingGroupArn"] == group["outputs"]["arn"]
    assert asg["managedScaling"]["status"] == "ENABLED"
    assert asg["managedScaling"]["targetCapacity"] == 100
    assert asg["managedScaling"]["maximumScalingStepSize"] == 3  # half of max_instances=6
    assert asg["managedDraining"] == "ENABLED"
    assert asg["managedTerminationProtection"] == "ENABLED"
    association = plan.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")["inputs"]
    cluster = plan.one("aws:ecs/cluster:Cluster")
    assert association["clusterName"] == cluster["outputs"]["name"]
    assert association["capacityProviders"] == [provider["outputs"]["name"]]
    (strategy,) = association["defaultCapacityProviderStrategies"]
    assert strategy["capacityProvider"] == provider["outputs"]["name"] and strategy["weight"] == 1


def test_capacity_target_percent_reaches_managed_scaling():
    provider = plan_of(capacity_target_percent=80).one("aws:ecs/capacityProvider:CapacityProvider")
    assert provider["inputs"]["autoScalingGroupProvider"]["managedScaling"]["targetCapacity"] == 80


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
    assert outputs["instance_role_name"] == plan.one("aws:iam/role:Role")["outputs"]["name"]


def test_the_reference_is_what_services_need(plan):
    outputs = plan.one("seaport:index:EcsCluster")["outputs"]
    assert outputs["reference"] == {
        "arn": outputs["cluster_arn"],
        "name": outputs["cluster_name"],
        "capacity_provider": outputs["capacity_provider_name"],
        "instance_security_group_id": outputs["instance_security_group_id"],
        "network": NETWORK,
        "dedicated_instances": [],
    }


def test_every_child_is_parented_to_the_component(plan):
    component = plan.one("seaport:index:EcsCluster")
    custom = [r for r in plan.resources if r["custom"]]
    assert custom and all(r["parent"] == component["urn"] for r in custom)


@pytest.mark.parametrize(
    ("name", "args", "path", "message"),
    [
        ("app", {"instance_type": "big"}, "instance_type", "instance_type='big' is not an EC2 instance type"),
        (
            "app",
            {"min_instances": 3, "max_instances": 2},
            "min_instances",
            "min_instances=3 must be <= max_instances=2",
        ),
        ("app", {"min_instances": -1}, "min_instances", "min_instances=-1 must be between 0 and 100"),
        ("app", {"max_instances": 0}, "max_instances", "max_instances=0 must be between 1 and 100"),
        ("app", {"root_volume_size_gib": 8}, "root_volume_size_gib", "=8 must be between 30 and 16384"),
        ("app", {"capacity_target_percent": 0}, "capacity_target_percent", "=0 must be between 1 and 100"),
        ("app", {"network": None}, "network", "network is required"),
        # A reference handed over by hand (another stack's ids) must be complete.
        ("app", {"network": WITHOUT_SUBNETS}, "network.instance_subnet_ids", "is required"),
        ("app", {"tags": {"aws:x": "y"}}, "tags", "has tag key 'aws:x'"),
        ("ecs-main", {}, "name", "must not start with aws, ecs or fargate"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(name, args, path, message):
    assert_refused(lambda: EcsCluster(name, {"network": NETWORK, **args}), path, message)


def test_every_bad_argument_is_reported_at_once():
    args = {"network": NETWORK, "min_instances": -1, "root_volume_size_gib": 10, "instance_type": "big"}
    paths = refused_paths(lambda: EcsCluster("aws-main", args))
    assert paths == ["instance_type", "min_instances", "name", "root_volume_size_gib"]
