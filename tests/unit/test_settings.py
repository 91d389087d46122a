"""Stack settings: typed reading, defaults from Pulumi.yaml, and every validation rule."""

from dataclasses import fields

import pulumi
import pytest
from seaport.tools import testing

import settings

VALID_ADOPT = {
    "existingVpcId": "vpc-0123456789abcdef0",
    "existingPublicSubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
}


def problems(**values):
    """The problems reported for the defaults overridden by ``values``."""
    try:
        settings.from_values(values, "test")
    except settings.SettingsError as error:
        return error.problems
    return []


def test_defaults_are_valid_and_come_from_pulumi_yaml():
    s = settings.from_values({}, "test")
    schema = settings.schema()
    assert s.network.az_count == schema["azCount"]["default"]
    assert s.cluster.instance_type == schema["instanceType"]["default"]
    assert s.web.scaling_mode == schema["scalingMode"]["default"]


def test_every_pulumi_yaml_setting_is_a_typed_field_and_back():
    keys = set()
    for cls in [*settings.SECTIONS.values(), settings.Settings]:
        keys |= {f.metadata["key"] for f in fields(cls) if "key" in f.metadata}
    schema = settings.schema()
    assert keys == set(schema)
    for key, spec in schema.items():
        assert spec.get("description"), f"{key} has no description"
        assert spec["type"] in ("string", "integer", "boolean", "array"), key
        assert "default" in spec, f"{key} has no default"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_files_are_valid(stack):
    config = testing.stack_config(settings.PROJECT_FILE.parent, stack)
    assert _load(config, stack).stack == stack


def test_stacks_differ_as_designed():
    dev = _load(testing.stack_config(settings.PROJECT_FILE.parent, "dev"))
    prod = _load(testing.stack_config(settings.PROJECT_FILE.parent, "prod"))
    assert (dev.web.scaling_mode, prod.web.scaling_mode) == ("step", "target-tracking")
    assert (dev.network.az_count, prod.network.az_count) == (2, 3)
    assert (dev.network.private_subnets, prod.network.private_subnets) == (False, True)
    assert (dev.consul.servers, prod.consul.servers) == (1, 3)


def _load(config, stack="test"):
    """settings.load() as the program calls it, with config set as the engine would."""
    result = {}
    testing.run(lambda: result.setdefault("s", settings.load()), stack=stack, config=config)
    return result["s"]


def test_load_reads_typed_values_from_config():
    s = _load({"seaport:azCount": "3", "seaport:privateSubnets": "true", "seaport:tags": '["team=a", "cost=b"]'})
    assert s.network.az_count == 3 and s.network.private_subnets is True
    assert s.tags == {"team": "a", "cost": "b"}


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("azCount", "two", "seaport:azCount='two' is not a whole number"),
        ("privateSubnets", "yes", "seaport:privateSubnets='yes' must be true or false"),
        ("tags", '{"a": "b"}', "must be a list of strings"),
    ],
)
def test_badly_typed_values_name_the_key(key, raw, message):
    with pytest.raises(settings.SettingsError) as error:
        _load({f"seaport:{key}": raw})
    assert message in str(error.value)


def test_settings_error_is_a_run_error_so_pulumi_prints_no_traceback():
    assert issubclass(settings.SettingsError, pulumi.RunError)


def test_all_problems_are_reported_together():
    found = problems(azCount=1, minTasks=5, maxTasks=3, logRetentionDays=10)
    assert len(found) >= 3


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # instance type, architecture, counts
        ({"instanceType": "large"}, "seaport:instanceType='large' is not an EC2 instance type"),
        ({"instanceType": "m7g.large"}, "seaport:instanceType='m7g.large' needs platform linux/arm64"),
        ({"platform": "linux/arm64"}, "seaport:instanceType='t3.small' needs platform linux/amd64"),
        (
            {"platform": "windows/amd64"},
            "seaport:platform='windows/amd64' must be one of linux/amd64, linux/arm64",
        ),
        ({"minInstances": 5, "maxInstances": 3}, "seaport:minInstances=5 must be <= seaport:maxInstances=3"),
        ({"maxInstances": 0, "minInstances": 0}, "seaport:maxInstances=0 must be between 1 and 100"),
        ({"minInstances": -1}, "seaport:minInstances=-1 must be between 0 and 100"),
        ({"rootVolumeSizeGiB": 8}, "seaport:rootVolumeSizeGiB=8 must be between 30 and 16384"),
        ({"capacityTargetPercent": 0}, "seaport:capacityTargetPercent=0 must be between 1 and 100"),
        # task counts: min <= desired <= max
        ({"minTasks": 5, "maxTasks": 3}, "seaport:minTasks=5 must be <= seaport:maxTasks=3"),
        ({"desiredTasks": 5, "maxTasks": 3}, "seaport:desiredTasks=5 must be <= seaport:maxTasks=3"),
        ({"minTasks": 3, "desiredTasks": 2}, "seaport:minTasks=3 must be <= seaport:desiredTasks=2"),
        ({"minTasks": 0}, "seaport:minTasks=0 must be between 1 and 100"),
        # scaling thresholds: 0 < in < out <= 100
        ({"scaleInCpuPercent": 80}, "seaport:scaleInCpuPercent=80 must be < seaport:scaleOutCpuPercent=75"),
        ({"scaleInCpuPercent": 75}, "seaport:scaleInCpuPercent=75 must be < seaport:scaleOutCpuPercent=75"),
        ({"scaleInCpuPercent": 0}, "seaport:scaleInCpuPercent=0 must be between 1 and 99"),
        ({"scaleOutCpuPercent": 101}, "seaport:scaleOutCpuPercent=101 must be between 2 and 100"),
        ({"targetCpuPercent": 95}, "seaport:targetCpuPercent=95 must be between 10 and 90"),
        ({"scalingMode": "simple"}, "seaport:scalingMode='simple' must be one of step, target-tracking"),
        ({"scaleInCooldownSeconds": -5}, "seaport:scaleInCooldownSeconds=-5 must be between 0 and 3600"),
        # AZs, CIDR and subnet fit
        ({"azCount": 1}, "seaport:azCount=1 must be between 2 and 6"),
        ({"azCount": 7}, "seaport:azCount=7 must be between 2 and 6"),
        ({"vpcCidr": "10.0.0.300/16"}, "seaport:vpcCidr='10.0.0.300/16' is not a valid IPv4 CIDR block"),
        ({"vpcCidr": "10.0.0.1/16"}, "seaport:vpcCidr='10.0.0.1/16' is not a valid IPv4 CIDR block"),
        ({"vpcCidr": "10.0.0.0/8"}, "must have a prefix length between /16 and /28"),
        ({"vpcCidr": "fd00::/56"}, "seaport:vpcCidr='fd00::/56' must be an IPv4 CIDR block"),
        (
            {"vpcCidr": "10.0.0.0/23", "azCount": 3, "privateSubnets": True},
            "seaport:subnetPrefixLength=24 gives room for 2 subnets in 10.0.0.0/23, and 6 are needed",
        ),
        (
            {"subnetPrefixLength": 12},
            "seaport:subnetPrefixLength=12 must be between 16 (the VPC's own prefix) and 28",
        ),
        (
            {"singleNatGateway": True},
            "seaport:singleNatGateway=True is only used with seaport:privateSubnets=true",
        ),
        # adopt mode
        ({"existingVpcId": "vpc-123"}, "seaport:existingVpcId='vpc-123' is not a VPC id"),
        (
            {
                "existingVpcId": "vpc-0123456789abcdef0",
                "existingPublicSubnetIds": ["subnet-0123456789abcdef0"],
            },
            "seaport:existingPublicSubnetIds=['subnet-0123456789abcdef0'] needs at least 2 subnet ids",
        ),
        (
            {**VALID_ADOPT, "existingPublicSubnetIds": ["subnet-0123456789abcdef0", "sn-1"]},
            "has sn-1, not subnet ids",
        ),
        (
            {**VALID_ADOPT, "existingPublicSubnetIds": ["subnet-0123456789abcdef0"] * 2},
            "lists a subnet more than once",
        ),
        (
            {**VALID_ADOPT, "privateSubnets": True},
            "seaport:existingPrivateSubnetIds=[] needs at least 1 subnet ids",
        ),
        (
            {"existingPublicSubnetIds": ["subnet-0123456789abcdef0"]},
            "is only used with seaport:existingVpcId",
        ),
        # logs, tags, web details
        ({"logRetentionDays": 10}, "seaport:logRetentionDays=10 must be one of 1, 3, 5, 7, 14, 30"),
        ({"logRetentionDays": 0}, "seaport:logRetentionDays=0 must be one of 1, 3, 5"),
        ({"tags": ["team"]}, "seaport:tags item 'team' must be key=value"),
        ({"tags": ["aws:owner=me"]}, "has tag key 'aws:owner'"),
        ({"tags": ["a=1", "a=2"]}, "seaport:tags sets 'a' twice"),
        ({"tags": ["a=" + "x" * 300]}, "values are up to 256"),
        ({"certificateArn": "arn:aws:iam::1:cert"}, "is not an ACM certificate ARN"),
        (
            {"healthCheckPath": "health"},
            "seaport:healthCheckPath='health' must be a URL path starting with /",
        ),
        ({"webCpu": 10}, "seaport:webCpu=10 must be between 64 and 10240"),
        ({"webMemoryMiB": 16}, "seaport:webMemoryMiB=16 must be between 64 and 122880"),
        ({"backendTasks": 0}, "seaport:backendTasks=0 must be between 1 and 50"),
        ({"tempScale": "K"}, "seaport:tempScale='K' must be one of C, F"),
        ({"imageRetainCount": 0}, "seaport:imageRetainCount=0 must be between 1 and 1000"),
        # consul and messaging
        ({"consulServers": 2}, "seaport:consulServers=2 must be one of 1, 3, 5"),
        ({"consulVersion": "latest"}, "seaport:consulVersion='latest' must be an exact release"),
        ({"consulInstanceType": "micro"}, "seaport:consulInstanceType='micro' is not an EC2 instance type"),
        ({"brokerMode": "sqs"}, "seaport:brokerMode='sqs' must be one of container, amazonmq"),
        ({"rabbitmqImage": "rabbitmq:latest"}, "must be a pinned management image"),
        ({"amazonMqInstanceType": "t3.micro"}, "is not an Amazon MQ instance type"),
        ({"amazonMqEngineVersion": "latest"}, "is not an engine version"),
        ({"queueName": "amq.reserved"}, "must be 1-255 letters, digits or _.:- and not start with amq."),
        ({"queueType": "stream"}, "seaport:queueType='stream' must be one of quorum, classic"),
        ({"sendTasks": 51}, "seaport:sendTasks=51 must be between 0 and 50"),
        ({"sendRate": 0}, "seaport:sendRate=0 must be between 1 and 10000"),
        ({"receiveTasks": -1}, "seaport:receiveTasks=-1 must be between 0 and 50"),
    ],
)
def test_each_rule_rejects_a_bad_value_naming_key_value_and_what_is_accepted(values, expected):
    found = problems(**values)
    assert any(expected in p for p in found), found


def test_adopt_mode_with_valid_ids_passes():
    s = settings.from_values(
        {**VALID_ADOPT, "privateSubnets": True, "existingPrivateSubnetIds": ["subnet-0123456789abcdef2"]}, "t"
    )
    assert s.network.adopt
