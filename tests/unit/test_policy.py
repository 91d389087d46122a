"""The policy pack: the real stacks pass every rule; a violating resource fails each rule by name."""

import json
import re

import pytest

from policy.offline import check
from policy.rules import POLICIES, _stack_of

DIGEST = "@sha256:" + "a" * 64


def resource(resource_type, name, inputs, outputs=None):
    return {
        "urn": f"urn:pulumi:test::seaport::{resource_type}::{name}",
        "type": resource_type,
        "name": name,
        "parent": None,
        "custom": True,
        "inputs": inputs,
        "outputs": {**inputs, **(outputs or {})},
    }


def task(name, container):
    return resource("aws:ecs/taskDefinition:TaskDefinition", name, {"containerDefinitions": json.dumps([container])})


TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:alarms"


def paging_alarm(name, dimensions, actions=(TOPIC_ARN,)):
    """An alarm that notifies the topic about a metric with these dimensions."""
    return resource(
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        name,
        {"namespace": "AWS/X", "metricName": "Y", "dimensions": dimensions, "alarmActions": list(actions)},
    )


def alb(group="sg-alb", port=80, internal=False):
    """An ALB with one listener (and the alarm that watches it), for the world-ingress rule's context."""
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/1"
    return [
        resource(
            "aws:lb/loadBalancer:LoadBalancer",
            "web",
            {"securityGroups": [group], "internal": internal},
            {"arn": arn, "arnSuffix": "app/web/1"},
        ),
        resource("aws:lb/listener:Listener", "web-http", {"loadBalancerArn": arn, "port": port}),
        paging_alarm("web-5xx", {"LoadBalancer": "app/web/1"}),
    ]


def world_rule(name, group, port, cidr="0.0.0.0/0"):
    key = "cidrIpv6" if ":" in cidr else "cidrIpv4"
    return resource(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        name,
        {"securityGroupId": group, "ipProtocol": "tcp", "fromPort": port, "toPort": port, key: cidr},
    )


def scaling_policy(name, adjustment, arn):
    return resource(
        "aws:appautoscaling/policy:Policy",
        name,
        {
            "policyType": "StepScaling",
            "stepScalingPolicyConfiguration": {"stepAdjustments": [{"scalingAdjustment": adjustment}]},
        },
        {"arn": arn},
    )


def launch_template(name, http_tokens, encrypted):
    """A launch template with these IMDS tokens (``required`` is IMDSv2 only) and root volume encryption."""
    return resource(
        "aws:ec2/launchTemplate:LaunchTemplate",
        name,
        {
            "metadataOptions": {"httpTokens": http_tokens},
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": encrypted}}],
        },
    )


SCALE_OUT_ARN = "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:1:resource/ecs/service/c/s:policyName/out"

VIOLATIONS = {
    "no-ssh": [
        resource(
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            "ssh-from-office",
            {"securityGroupId": "sg-1", "ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "10.0.0.0/8"},
        )
    ],
    "imdsv2-required": [launch_template("lt-v1", http_tokens="optional", encrypted="true")],
    "encrypted-volumes": [launch_template("lt-plain", http_tokens="required", encrypted="false")],
    "log-retention": [resource("aws:cloudwatch/logGroup:LogGroup", "forever", {})],
    "ecs-circuit-breaker": [
        paging_alarm("no-breaker-tasks", {"ServiceName": "no-breaker-1"}),
        resource(
            "aws:ecs/service:Service",
            "no-breaker",
            {
                "name": "no-breaker-1",
                "schedulingStrategy": "REPLICA",
                "deploymentCircuitBreaker": {"enable": True, "rollback": False},
            },
        ),
    ],
    "images-by-digest": [task("tagged", {"name": "web", "image": "nginx:latest", "environment": []})],
    "no-plaintext-secrets": [
        task(
            "leaky",
            {
                "name": "broker",
                "image": "rabbitmq" + DIGEST,
                "environment": [{"name": "RABBITMQ_DEFAULT_PASS", "value": "hunter2"}],
            },
        )
    ],
    "nonzero-step-adjustments": [scaling_policy("never-scales", 0, SCALE_OUT_ARN)],
    "ecr-scan-on-push": [
        resource("aws:ecr/repository:Repository", "unscanned", {"imageScanningConfiguration": {"scanOnPush": False}})
    ],
    "world-ingress-only-on-alb-listeners": [*alb(), world_rule("open-8080", "sg-alb", 8080)],
    "alarms-notify-a-topic": [paging_alarm("silent", {"ServiceName": "api"}, actions=())],
    "alarms-cover-services-and-load-balancers": [
        paging_alarm("other-tasks", {"ClusterName": "main", "ServiceName": "other"}),
        resource(
            "aws:ecs/service:Service",
            "unwatched",
            {
                "name": "api-1234567",
                "cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/main",
                "desiredCount": 2,
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            },
        ),
    ],
    "scale-out-alarms-within-5-minutes": [
        scaling_policy("out", 1, SCALE_OUT_ARN),
        resource(
            "aws:cloudwatch/metricAlarm:MetricAlarm",
            "slow-alarm",
            {
                "alarmActions": [SCALE_OUT_ARN],
                "period": 60,
                "evaluationPeriods": 60,
                "comparisonOperator": "GreaterThanOrEqualToThreshold",
            },
        ),
    ],
}


VIOLATIONS["generated-secrets-secret"] = [
    resource("random:index/randomUuid4:RandomUuid4", "token-in-clear", {}, {"result": "0b7e..."}),
]
VIOLATIONS["sidecars-read-only"] = [
    resource(
        "aws:ecs/taskDefinition:TaskDefinition",
        "writable-registrar",
        {
            "containerDefinitions": json.dumps(
                [
                    {"name": "app", "image": "app" + DIGEST, "readonlyRootFilesystem": False},
                    {"name": "app-registrar", "image": "registrar" + DIGEST, "readonlyRootFilesystem": False},
                ]
            )
        },
    )
]
VIOLATIONS["internet-facing-alb-access-logs-in-prod"] = [
    paging_alarm("unlogged-5xx", {"LoadBalancer": "app/unlogged/1"}),
    {
        **resource(
            "aws:lb/loadBalancer:LoadBalancer", "unlogged", {"internal": False}, {"arnSuffix": "app/unlogged/1"}
        ),
        "urn": "urn:pulumi:prod::seaport::aws:lb/loadBalancer:LoadBalancer::unlogged",
    },
]
VIOLATIONS["vpc-flow-logs"] = [resource("aws:ec2/vpc:Vpc", "unlogged-vpc", {}, {"id": "vpc-0123456789abcdef0"})]


def test_every_policy_has_a_violating_case():
    assert {p.name for p in POLICIES} == set(VIOLATIONS)


@pytest.mark.parametrize("stack", ["dev_plan", "prod_plan", "dev_amazonmq_plan"])
def test_the_real_stacks_pass_every_policy(stack, request):
    plan = request.getfixturevalue(stack)
    assert check(plan.to_json()["resources"]) == []


@pytest.mark.parametrize("policy", sorted(VIOLATIONS))
def test_each_policy_rejects_its_violation_naming_the_resource_and_the_fix(policy):
    resources = VIOLATIONS[policy]
    found = [v for v in check(resources) if v.policy == policy]
    assert found, f"{policy} accepted a violating resource"
    offender = resources[-1]
    for violation in found:
        assert offender["name"] in violation.message
        assert "Fix:" in violation.message
        assert violation.urn == offender["urn"]


def test_violating_cases_break_only_their_own_policy():
    for policy, resources in VIOLATIONS.items():
        assert {v.policy for v in check(resources)} == {policy}, policy


@pytest.mark.parametrize(
    ("resources", "ok"),
    [
        ([*alb(port=80), world_rule("http", "sg-alb", 80)], True),
        ([*alb(port=443), world_rule("https-v6", "sg-alb", 443, "::/0")], True),
        ([*alb(port=80, internal=True), world_rule("internal-alb", "sg-alb", 80)], False),
        ([world_rule("instances", "sg-instances", 80)], False),
        (
            [
                resource(
                    "aws:ec2/securityGroup:SecurityGroup",
                    "inline",
                    {"ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]},
                    {"id": "sg-inline"},
                )
            ],
            False,
        ),
    ],
)
def test_world_ingress_rule_cases(resources, ok):
    violations = [v for v in check(resources) if v.policy == "world-ingress-only-on-alb-listeners"]
    assert (violations == []) is ok


def test_the_original_designs_scaling_fails_both_scaling_rules():
    # The 2017 report: ScalingAdjustment=0 on both policies, alarms of 60 one-minute periods.
    out_arn, in_arn = SCALE_OUT_ARN, SCALE_OUT_ARN.replace("/out", "/in")
    resources = [
        scaling_policy("php-app-out", 0, out_arn),
        scaling_policy("php-app-in", 0, in_arn),
        resource(
            "aws:cloudwatch/metricAlarm:MetricAlarm",
            "php-app-high",
            {
                "alarmActions": [out_arn],
                "period": 60,
                "evaluationPeriods": 60,
                "comparisonOperator": "GreaterThanOrEqualToThreshold",
            },
        ),
    ]
    assert {v.policy for v in check(resources)} == {"nonzero-step-adjustments", "scale-out-alarms-within-5-minutes"}


# -- no-plaintext-secrets: by name and by value, from seaport.rules ----------------------------------

GENERATED_PASSWORD = "Zq8vR2mT5kLp9wXa3cYe7uNb4hJd6sFg"


def generated_password(result=GENERATED_PASSWORD):
    return resource("random:index/randomPassword:RandomPassword", "broker-password", {"length": 32}, {"result": result})


def app_task(name, environment):
    return task(
        name,
        {
            "name": "app",
            "image": "app" + DIGEST,
            "environment": [{"name": k, "value": v} for k, v in environment.items()],
        },
    )


def secret_violations(resources):
    return [v for v in check(resources) if v.policy == "no-plaintext-secrets"]


@pytest.mark.parametrize(
    ("environment", "refused"),
    [
        ({"RABBITMQ_DEFAULT_PASS": "hunter2"}, ["RABBITMQ_DEFAULT_PASS"]),
        ({"DB_PASSWD": "hunter2", "API_KEY": "k"}, ["API_KEY", "DB_PASSWD"]),
        ({"BROKER_LOGIN": GENERATED_PASSWORD}, ["BROKER_LOGIN"]),  # a generated credential's value, any name
        ({"KEYCLOAK_URL": "https://id.example.com", "RABBITMQ_QUEUE": "messages"}, []),
        ({"NOTE": "not the password " + GENERATED_PASSWORD}, []),  # whole values only
    ],
)
def test_no_plaintext_secrets_by_name_and_by_value(environment, refused):
    found = secret_violations([generated_password(), app_task("app-task", environment)])
    assert sorted(re.search(r"puts (\w+) of container", v.message).group(1) for v in found) == refused
    for violation in found:
        assert "app-task" in violation.message and "Fix:" in violation.message
        assert violation.urn.endswith("::app-task")


def test_the_secret_placeholder_of_a_plan_is_no_value_to_look_for():
    # In an offline plan every generated value reads "[secret]": that must not match ordinary values.
    resources = [generated_password("[secret]"), app_task("app-task", {"RABBITMQ_QUEUE": "messages"})]
    assert secret_violations(resources) == []


# -- ecs-circuit-breaker: replicas need one, daemons can't use one ------------------------------------


def ecs_service(name, strategy, breaker=None):
    inputs = {"schedulingStrategy": strategy}
    if breaker is not None:
        inputs["deploymentCircuitBreaker"] = breaker
    return resource("aws:ecs/service:Service", name, inputs)


@pytest.mark.parametrize(
    ("service", "ok"),
    [
        (ecs_service("agent", "DAEMON"), True),
        (ecs_service("agent-off", "DAEMON", {"enable": False, "rollback": False}), True),
        (ecs_service("web", "REPLICA"), False),
        (ecs_service("web-no-rollback", "REPLICA", {"enable": True, "rollback": False}), False),
        (ecs_service("web-ok", "REPLICA", {"enable": True, "rollback": True}), True),
        (resource("aws:ecs/service:Service", "default-strategy", {}), False),  # REPLICA is ECS's default
    ],
)
def test_circuit_breaker_cases(service, ok):
    found = [v for v in check([service]) if v.policy == "ecs-circuit-breaker"]
    assert (found == []) is ok, found


# -- alarms: every alarm that does not scale pages; every service and internet-facing ALB is watched ----------

CLUSTER_ARN = "arn:aws:ecs:us-east-1:123456789012:cluster/main"


def service(name="api-1", cluster=CLUSTER_ARN, **props):
    inputs = {"name": name, "cluster": cluster, "deploymentCircuitBreaker": {"enable": True, "rollback": True}}
    return resource("aws:ecs/service:Service", name, {**inputs, **props})


def cover_violations(resources):
    return [v for v in check(resources) if v.policy == "alarms-cover-services-and-load-balancers"]


@pytest.mark.parametrize(
    ("resources", "ok"),
    [
        ([paging_alarm("tasks", {"ClusterName": "main", "ServiceName": "api-1"}), service()], True),
        ([paging_alarm("tasks", {"ServiceName": "api-1"}), service()], True),  # no cluster named: any cluster
        ([paging_alarm("tasks", {"ClusterName": "other", "ServiceName": "api-1"}), service()], False),
        # an alarm that only scales (no topic) does not page anyone
        ([paging_alarm("cpu-high", {"ServiceName": "api-1"}, actions=[SCALE_OUT_ARN]), service()], False),
        ([service(desiredCount=0)], True),  # runs nothing: nothing to watch
        ([service(schedulingStrategy="DAEMON")], False),  # a daemon has no desired count, and runs
        (
            [
                resource(
                    "aws:cloudwatch/metricAlarm:MetricAlarm",
                    "5xx-share",
                    {
                        "alarmActions": [TOPIC_ARN],
                        "metricQueries": [
                            {"id": "e", "expression": "100 * a / b"},
                            {"id": "a", "metric": {"metricName": "X", "dimensions": {"LoadBalancer": "app/web/1"}}},
                        ],
                    },
                ),
                resource("aws:lb/loadBalancer:LoadBalancer", "web", {"internal": False}, {"arnSuffix": "app/web/1"}),
            ],
            True,
        ),  # metric math alarms count too
        ([resource("aws:lb/loadBalancer:LoadBalancer", "web", {"internal": False}, {"arnSuffix": "a/b/1"})], False),
        ([resource("aws:lb/loadBalancer:LoadBalancer", "ui", {"internal": True}, {"arnSuffix": "a/b/2"})], True),
    ],
)
def test_alarm_coverage_cases(resources, ok):
    assert (cover_violations(resources) == []) is ok


@pytest.mark.parametrize(
    ("actions", "ok"),
    [
        ([TOPIC_ARN], True),
        (["arn:aws-us-gov:sns:us-gov-west-1:123456789012:alarms"], True),
        ([SCALE_OUT_ARN], True),  # drives scaling
        ([], False),
        (["arn:aws:automate:us-east-1:ec2:reboot"], False),
    ],
)
def test_alarm_notification_cases(actions, ok):
    found = [v for v in check([paging_alarm("a", {}, actions=actions)]) if v.policy == "alarms-notify-a-topic"]
    assert (found == []) is ok


def test_generated_secrets_are_secret_by_the_provider_or_by_asking():
    password = resource("random:index/randomPassword:RandomPassword", "pw", {}, {"result": "x"})
    asked = {**resource("random:index/randomUuid4:RandomUuid4", "id", {}), "additionalSecretOutputs": ["result"]}
    half = {**resource("random:index/randomBytes:RandomBytes", "key", {}), "additionalSecretOutputs": []}
    assert [v for v in check([password, asked, half]) if v.policy == "generated-secrets-secret"] == []
    uuid = resource("random:index/randomUuid:RandomUuid", "clear", {})
    (violation,) = [v for v in check([uuid]) if v.policy == "generated-secrets-secret"]
    assert "additional_secret_outputs=['result']" in violation.message


def test_the_plan_records_what_the_engine_stores_encrypted(dev_plan):
    """The policy pack reads additional secret outputs from the plan as Pulumi hands them to it."""
    generated = [r for r in dev_plan.resources if r["type"].startswith("random:")]
    assert generated
    assert [v for v in check(generated) if v.policy == "generated-secrets-secret"] == []


@pytest.mark.parametrize(
    ("stack", "access_logs", "ok"),
    [("prod", {"enabled": True, "bucket": "logs"}, True), ("prod", None, False), ("dev", None, True)],
)
def test_access_logs_are_required_of_production_stacks_only(stack, access_logs, ok):
    balancer = resource("aws:lb/loadBalancer:LoadBalancer", "web", {"internal": False, "accessLogs": access_logs})
    assert _stack_of(balancer["urn"]) == "test"
    balancer["urn"] = balancer["urn"].replace("urn:pulumi:test::", f"urn:pulumi:{stack}::")
    internal = {**balancer, "inputs": {"internal": True}, "outputs": {"internal": True}}
    found = [v for v in check([balancer, internal]) if v.policy == "internet-facing-alb-access-logs-in-prod"]
    assert (found == []) is ok


def test_a_vpc_with_its_flow_log_passes_and_an_adopted_one_is_not_judged():
    vpc = resource("aws:ec2/vpc:Vpc", "main", {}, {"id": "vpc-1"})
    flow = resource("aws:ec2/flowLog:FlowLog", "main", {"vpcId": "vpc-1", "trafficType": "ALL"})
    assert [v for v in check([vpc, flow]) if v.policy == "vpc-flow-logs"] == []
    unknown_in_preview = resource("aws:ec2/vpc:Vpc", "new", {})
    assert [v for v in check([unknown_in_preview]) if v.policy == "vpc-flow-logs"] == []
