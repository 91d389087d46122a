"""Stack settings: typed reading, one vocabulary with the components, their defaults and their rules."""

import re
import typing

import pulumi
import pytest

import seaport
import settings
from seaport.tools import testing

VALID_ADOPT = {
    "existingVpcId": "vpc-0123456789abcdef0",
    "existingPublicSubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
}
# Settings the program reads itself instead of handing them to a component.
PROGRAM_SETTINGS = {"tags", "tempScale", "allowPlainHttp"}
# A test stack that may serve plain HTTP, as dev does; the rule that refuses it by default has its own tests.
PLAIN_HTTP = {"allowPlainHttp": True}


def problems(**values):
    """The problems reported for the defaults overridden by ``values``."""
    try:
        settings.from_values({**PLAIN_HTTP, **values}, "test")
    except settings.SettingsError as error:
        return error.problems
    return []


def _load(config, stack="test"):
    """settings.load() as the program calls it, with config set as the engine would."""
    result = {}
    config = {"seaport:allowPlainHttp": "true", **config} if stack == "test" else config
    testing.run(lambda: result.setdefault("s", settings.load()), stack=stack, config=config)
    return result["s"]


def _stack(stack):
    return _load(testing.stack_config(settings.PROJECT_FILE.parent, stack), stack)


# -- the vocabulary -------------------------------------------------------------------------------


def test_every_pulumi_yaml_setting_is_a_component_argument_or_read_by_the_program():
    schema = settings.schema()
    assert set(settings.ARGUMENTS) | PROGRAM_SETTINGS == set(schema)
    assert not set(settings.ARGUMENTS) & PROGRAM_SETTINGS
    for key, spec in schema.items():
        assert spec.get("description"), f"{key} has no description"
        assert spec["type"] in ("string", "integer", "number", "boolean", "array"), key
        assert "default" in spec, f"{key} has no default"


def test_renamed_and_removed_settings_are_gone():
    schema = settings.schema()
    assert {"backendTasks", "forceDeleteImages", "desiredTasks"} & set(schema) == set()
    assert {"backendDesiredTasks", "imageForceDelete"} <= set(schema)


def _camel(snake):
    first, *rest = snake.split("_")
    return first + "".join(part.title() for part in rest)


def test_every_key_is_a_prefix_and_the_arguments_own_name():
    """One vocabulary: ``minTasks`` is ``autoscaling.min_tasks``, ``consulVersion`` is ConsulMesh's ``version``."""
    for key, targets in settings.ARGUMENTS.items():
        assert targets, key
        for component, path in targets:
            assert component in settings.VALIDATORS, (key, component)
            name = _camel(path.rsplit(".", 1)[-1])
            spellings = {(prefix + name[:1].upper() + name[1:]) if prefix else name for prefix in settings.KEY_PREFIXES}
            assert key.lower() in {s.lower() for s in spellings}, f"{key} is not a prefix + {name} ({component}.{path})"


def test_the_vocabulary_check_refuses_an_old_name(monkeypatch):
    monkeypatch.setitem(settings.ARGUMENTS, "backendTasks", [("backends", "desired_tasks")])
    with pytest.raises(AssertionError, match="backendTasks is not a prefix"):
        test_every_key_is_a_prefix_and_the_arguments_own_name()


COMPONENT_ARGS = {
    "network": seaport.NetworkArgs,
    "cluster": seaport.EcsClusterArgs,
    "portal": seaport.ScaledWebServiceArgs,
    "backends": seaport.ContainerServiceArgs,
    "images": seaport.ContainerImageArgs,
    "consul": seaport.ConsulMeshArgs,
    "messaging": seaport.RabbitMessagingArgs,
    "monitoring": seaport.MonitoringArgs,
}


def test_every_argument_path_is_a_field_of_the_components_args():
    """A mapped argument that its component does not declare would be silently ignored."""
    assert set(COMPONENT_ARGS) == set(settings.VALIDATORS)
    for key, targets in settings.ARGUMENTS.items():
        for component, path in targets:
            fields = COMPONENT_ARGS[component]
            for part in path.split("."):
                assert part in fields.__annotations__, f"{key}: {component}.{path} has no {part}"
                fields = fields.__annotations__[part]
                if typing.get_origin(fields) is typing.Required:
                    (fields,) = typing.get_args(fields)


def test_pulumi_yaml_defaults_are_the_components_defaults():
    """Components own the defaults (``make docs`` writes them into Pulumi.yaml); "" means "not set"."""
    schema = settings.schema()
    differ = {}
    for key in settings.ARGUMENTS:
        documented = schema[key].get("default")
        own = settings.component_default(key)
        if documented == "" and own is None:
            continue
        if documented != own:
            differ[key] = (documented, own)
    assert differ == {}, "Pulumi.yaml default != component default: " + ", ".join(
        f"{k} {d!r} != {o!r}" for k, (d, o) in differ.items()
    )


# -- reading --------------------------------------------------------------------------------------


def test_defaults_are_valid_and_become_component_arguments():
    s = settings.from_values(PLAIN_HTTP, "test")
    schema = settings.schema()
    assert s["network"]["az_count"] == schema["azCount"]["default"]
    assert s["cluster"]["instance_type"] == schema["instanceType"]["default"]
    assert s["portal"]["autoscaling"]["scaling_mode"] == schema["scalingMode"]["default"]
    assert s["portal"]["container"]["memory_mib"] == schema["webMemoryMiB"]["default"]
    assert s["backends"]["desired_tasks"] == schema["backendDesiredTasks"]["default"]
    assert s["images"]["force_delete"] == schema["imageForceDelete"]["default"]
    assert "existing_vpc_id" not in s["network"]  # "" is "not set"
    assert "certificate_arn" not in s["portal"]["load_balancer"]


def test_one_setting_feeds_every_component_that_has_the_argument():
    s = settings.from_values({**PLAIN_HTTP, "logRetentionDays": 90}, "test")
    assert s["portal"]["service"]["log_retention_days"] == 90
    assert s["backends"]["log_retention_days"] == 90
    assert s["consul"]["log_retention_days"] == 90
    assert s["messaging"]["log_retention_days"] == 90


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_files_are_valid(stack):
    assert _stack(stack).stack == stack


def test_stacks_differ_as_designed():
    dev, prod = _stack("dev"), _stack("prod")
    assert (dev["portal"]["autoscaling"]["scaling_mode"], prod["portal"]["autoscaling"]["scaling_mode"]) == (
        "step",
        "target-tracking",
    )
    assert (dev["network"]["az_count"], prod["network"]["az_count"]) == (2, 3)
    assert (dev["network"]["private_subnets"], prod["network"]["private_subnets"]) == (False, True)
    assert (dev["consul"]["servers"], prod["consul"]["servers"]) == (1, 3)
    assert (dev["images"]["force_delete"], prod["images"]["force_delete"]) == (True, False)
    assert (dev["backends"]["desired_tasks"], prod["backends"]["desired_tasks"]) == (1, 2)
    assert (dev.tags, prod.tags) == (
        {"environment": "dev", "owner": "platform"},
        {"environment": "prod", "owner": "platform"},
    )


def test_load_reads_typed_values_from_config():
    s = _load({"seaport:azCount": "3", "seaport:privateSubnets": "true", "seaport:tags": '["team=a", "cost=b"]'})
    assert s["network"]["az_count"] == 3 and s["network"]["private_subnets"] is True
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


def test_badly_typed_values_are_reported_together():
    with pytest.raises(settings.SettingsError) as error:
        _load({"seaport:azCount": "two", "seaport:privateSubnets": "yes"})
    assert error.value.problems == [
        "seaport:azCount='two' is not a whole number",
        "seaport:privateSubnets='yes' must be true or false",
    ]


def test_settings_error_is_a_run_error_so_pulumi_prints_no_traceback():
    assert issubclass(settings.SettingsError, pulumi.RunError)


# -- rules: the components', reported under the settings' names --------------------------------------


def test_all_problems_are_reported_together_under_setting_names():
    found = problems(azCount=1, minTasks=5, maxTasks=3, logRetentionDays=10, consulServers=2, sendRate=0)
    assert sorted(found) == sorted(
        [
            "seaport:azCount=1 must be between 2 and 6",
            "seaport:minTasks=5 must be <= seaport:maxTasks=3",
            "seaport:logRetentionDays=10 must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, "
            "731, 1096, 1827, 2192, 2557, 2922, 3288, 3653",
            "seaport:consulServers=2 must be one of 1, 3, 5",
            "seaport:sendRate=0 must be between 1 and 10000",
        ]
    )


def test_no_problem_speaks_of_component_arguments():
    found = problems(
        azCount=1,
        minTasks=5,
        maxTasks=3,
        scaleInCpuPercent=80,
        minInstances=5,
        maxInstances=3,
        singleNatGateway=True,
        existingPublicSubnetIds=["subnet-0123456789abcdef0"],
        webCpu=20000,
        backendDesiredTasks=1001,
    )
    assert len(found) >= 8
    for problem in found:
        assert problem.startswith("seaport:"), problem
        assert not re.search(r"\b[a-z]+_[a-z_]+\b", problem), f"names an argument, not a setting: {problem}"


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
        # task counts: min <= max (the portal starts minTasks tasks; autoscaling owns the count)
        ({"minTasks": 5, "maxTasks": 3}, "seaport:minTasks=5 must be <= seaport:maxTasks=3"),
        ({"minTasks": 0}, "seaport:minTasks=0 must be between 1 and"),
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
        ({"singleNatGateway": True}, "seaport:singleNatGateway=True is only used with seaport:privateSubnets"),
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
        ({"webCpu": 20000}, "seaport:webCpu=20000 must be between 0 and 10240"),
        ({"webMemoryMiB": 200000}, "seaport:webMemoryMiB=200000 must be between 6 and 122880"),
        ({"backendDesiredTasks": -1}, "seaport:backendDesiredTasks=-1 must be between 0 and"),
        ({"tempScale": "K"}, "seaport:tempScale='K' must be one of C, F"),
        ({"imageRetainCount": 0}, "seaport:imageRetainCount=0 must be between 1 and 1000"),
        # consul and messaging
        ({"consulServers": 2}, "seaport:consulServers=2 must be one of 1, 3, 5"),
        ({"consulVersion": "latest"}, "seaport:consulVersion='latest' must be an exact release"),
        ({"consulInstanceType": "micro"}, "seaport:consulInstanceType='micro' is not an EC2 instance type"),
        ({"brokerMode": "sqs"}, "seaport:brokerMode='sqs' must be one of container, cluster, amazonmq"),
        ({"rabbitmqImage": "rabbitmq:latest"}, "must be a pinned management image"),
        ({"amazonMqInstanceType": "t3.micro"}, "is not an Amazon MQ instance type"),
        ({"amazonMqEngineVersion": "latest"}, "is not an engine version"),
        ({"queueName": "amq.reserved"}, "must be 1-255 letters, digits or _.:- and not start with amq."),
        ({"queueType": "stream"}, "seaport:queueType='stream' must be one of quorum, classic"),
        ({"sendTasks": 51}, "seaport:sendTasks=51 must be between 0 and 50"),
        ({"sendRate": 0}, "seaport:sendRate=0 must be between 1 and 10000"),
        ({"receiveMaxTasks": 0}, "seaport:receiveMaxTasks=0 must be between 1 and 1000"),
        (
            {"receiveMinTasks": 5, "receiveMaxTasks": 3},
            "seaport:receiveMinTasks=5 must be <= seaport:receiveMaxTasks=3",
        ),
        ({"alarmEmail": "ops"}, "seaport:alarmEmail='ops'"),
        # the internet edge
        ({"domainName": "portal"}, "seaport:domainName='portal' is not a DNS name, e.g. portal.example.com"),
        ({"domainName": "portal.example.com"}, "seaport:hostedZoneId=<missing> is required with seaport:domainName"),
        ({"hostedZoneId": "zone"}, "seaport:hostedZoneId='zone' is not a Route 53 hosted zone id"),
        ({"accessLogRetentionDays": 0}, "seaport:accessLogRetentionDays=0 must be between 1 and"),
        ({"wafRateLimit": 5}, "seaport:wafRateLimit=5 must be between 10 and 2000000000"),
        ({"errorRatePercent": 0}, "seaport:errorRatePercent=0"),
    ],
)
def test_each_rule_rejects_a_bad_value_naming_key_value_and_what_is_accepted(values, expected):
    found = problems(**values)
    assert any(expected in p for p in found), found


def test_adopt_mode_with_valid_ids_passes():
    s = settings.from_values(
        {**PLAIN_HTTP, **VALID_ADOPT, "privateSubnets": True, "existingPrivateSubnetIds": ["subnet-0123456789abcdef2"]},
        "t",
    )
    assert s["network"]["existing_vpc_id"] == VALID_ADOPT["existingVpcId"]
    assert s["network"]["existing_private_subnet_ids"] == ["subnet-0123456789abcdef2"]


# -- the internet edge: HTTPS unless the stack says it may serve plain HTTP ------------------------------


def _plain_http_problems(**values):
    try:
        settings.from_values(values, "test")
    except settings.SettingsError as error:
        return [p for p in error.problems if "plain HTTP" in p]
    return []


def test_a_stack_without_a_name_or_certificate_is_refused_unless_it_allows_plain_http():
    (refused,) = _plain_http_problems()
    assert refused.startswith("seaport:domainName is not set: the portal would serve the internet over plain HTTP")
    assert "seaport:allowPlainHttp=true" in refused
    assert _plain_http_problems(allowPlainHttp=True) == []
    assert _plain_http_problems(domainName="portal.example.com", hostedZoneId="Z0123456789EXAMPLE") == []
    arn = "arn:aws:acm:eu-west-1:123456789012:certificate/0123abcd-0123-abcd-0123-0123456789ab"
    assert _plain_http_problems(certificateArn=arn) == []


def test_the_edge_settings_reach_the_load_balancer():
    s = settings.from_values(
        {
            "domainName": "portal.example.com",
            "hostedZoneId": "Z0123456789EXAMPLE",
            "waf": True,
            "wafRateLimit": 500,
            "accessLogRetentionDays": 30,
            "deletionProtection": True,
        },
        "test",
    )
    balancer = s["portal"]["load_balancer"]
    assert (balancer["domain_name"], balancer["hosted_zone_id"]) == ("portal.example.com", "Z0123456789EXAMPLE")
    assert (balancer["waf"], balancer["waf_rate_limit"], balancer["deletion_protection"]) == (True, 500, True)
    assert (balancer["access_logs"], balancer["access_log_retention_days"]) == (True, 30)
    assert s["network"]["flow_logs"] is True
