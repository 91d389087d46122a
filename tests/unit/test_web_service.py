"""ScaledWebService: ALB, security groups, target group, listeners and autoscaling."""

import json

import pytest
from seaport import InvalidArgument, ScaledWebService
from seaport.tools.testing import run

INSTANCE_SG = "sg-0123456789abcdef0"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0d1e2f3a-1234-4cde-8f00-123456789abc"
BASE = {
    "vpc_id": "vpc-0123456789abcdef0",
    "public_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "cluster_arn": "arn:aws:ecs:us-east-1:123456789012:cluster/main-1234567",
    "cluster_name": "main-1234567",
    "capacity_provider_name": "main-capacity-1234567",
    "instance_security_group_id": INSTANCE_SG,
    "container": {"image": "nginx:1.27", "port": 8080},
}


def web_plan(**args):
    return run(lambda: ScaledWebService("web", {**BASE, **args}))


@pytest.fixture(scope="module")
def step():
    return web_plan(scaling_mode="step", min_count=1, desired_count=2, max_count=3)


@pytest.fixture(scope="module")
def tracking():
    return web_plan(scaling_mode="target-tracking", target_cpu_percent=55)


def ingress(plan):
    return plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")


def alb_group(plan):
    return plan.named("web-alb", "aws:ec2/securityGroup:SecurityGroup")


def test_only_the_listener_port_is_open_to_the_world(step):
    world = [r["inputs"] for r in ingress(step) if r["inputs"].get("cidrIpv4") or r["inputs"].get("cidrIpv6")]
    assert world == [
        {
            "securityGroupId": alb_group(step)["outputs"]["id"],
            "ipProtocol": "tcp",
            "fromPort": 80,
            "toPort": 80,
            "cidrIpv4": "0.0.0.0/0",
            "description": "listener port 80",
        }
    ]


def test_https_opens_443_and_redirects_http():
    plan = web_plan(certificate_arn=CERT)
    world_ports = sorted(r["inputs"]["fromPort"] for r in ingress(plan) if r["inputs"].get("cidrIpv4"))
    assert world_ports == [80, 443]
    listeners = {r["inputs"]["port"]: r["inputs"] for r in plan.of_type("aws:lb/listener:Listener")}
    assert listeners[443]["protocol"] == "HTTPS" and listeners[443]["certificateArn"] == CERT
    assert listeners[443]["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    (redirect,) = listeners[80]["defaultActions"]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}
    assert plan.one("seaport:index:ScaledWebService")["outputs"]["url"].startswith("https://")


def test_alb_reaches_instances_only_on_the_ephemeral_range_from_its_own_group(step):
    (to_instances,) = [r["inputs"] for r in ingress(step) if r["inputs"]["securityGroupId"] == INSTANCE_SG]
    assert to_instances["referencedSecurityGroupId"] == alb_group(step)["outputs"]["id"]
    assert (to_instances["ipProtocol"], to_instances["fromPort"], to_instances["toPort"]) == ("tcp", 32768, 65535)
    assert "cidrIpv4" not in to_instances
    (egress,) = step.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    assert egress["inputs"]["referencedSecurityGroupId"] == INSTANCE_SG
    assert (egress["inputs"]["fromPort"], egress["inputs"]["toPort"]) == (32768, 65535)


def test_internet_facing_alb_over_public_subnets_drops_invalid_headers(step):
    balancer = step.one("aws:lb/loadBalancer:LoadBalancer")["inputs"]
    assert balancer["internal"] is False and balancer["loadBalancerType"] == "application"
    assert balancer["subnets"] == BASE["public_subnet_ids"]
    assert balancer["dropInvalidHeaderFields"] is True
    assert balancer["securityGroups"] == [alb_group(step)["outputs"]["id"]]


def test_target_group_uses_instance_targets_health_path_and_short_deregistration(step):
    group = step.one("aws:lb/targetGroup:TargetGroup")["inputs"]
    assert group["targetType"] == "instance"
    assert group["healthCheck"]["path"] == "/health" and group["healthCheck"]["matcher"] == "200"
    assert group["deregistrationDelay"] == 30
    custom = web_plan(health_check_path="/ready", deregistration_delay_seconds=5)
    assert custom.one("aws:lb/targetGroup:TargetGroup")["inputs"]["healthCheck"]["path"] == "/ready"
    assert custom.one("aws:lb/targetGroup:TargetGroup")["inputs"]["deregistrationDelay"] == 5


def test_http_listener_forwards_to_the_target_group_and_the_service_is_attached(step):
    target_group = step.one("aws:lb/targetGroup:TargetGroup")["outputs"]["arn"]
    (listener,) = step.of_type("aws:lb/listener:Listener")
    assert listener["inputs"]["port"] == 80
    assert listener["inputs"]["defaultActions"] == [{"type": "forward", "targetGroupArn": target_group}]
    assert listener["inputs"]["loadBalancerArn"] == step.one("aws:lb/loadBalancer:LoadBalancer")["outputs"]["arn"]
    service = step.one("aws:ecs/service:Service")["inputs"]
    assert service["loadBalancers"][0]["targetGroupArn"] == target_group
    task = step.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]
    assert json.loads(task["containerDefinitions"])[0]["portMappings"][0]["hostPort"] == 0


def test_scalable_target_bounds_and_desired_count(step):
    target = step.one("aws:appautoscaling/target:Target")["inputs"]
    service = step.one("aws:ecs/service:Service")
    assert target["resourceId"] == f"service/main-1234567/{service['outputs']['name']}"
    assert target["scalableDimension"] == "ecs:service:DesiredCount"
    assert target["minCapacity"] <= service["inputs"]["desiredCount"] <= target["maxCapacity"]
    assert (target["minCapacity"], service["inputs"]["desiredCount"], target["maxCapacity"]) == (1, 2, 3)


def test_step_policies_add_and_remove_one_task(step):
    policies = {p["name"]: p["inputs"] for p in step.of_type("aws:appautoscaling/policy:Policy")}
    assert set(policies) == {"web-scale-out", "web-scale-in"}
    out = policies["web-scale-out"]["stepScalingPolicyConfiguration"]
    scale_in = policies["web-scale-in"]["stepScalingPolicyConfiguration"]
    assert out["stepAdjustments"] == [{"scalingAdjustment": 1, "metricIntervalLowerBound": "0"}]
    assert scale_in["stepAdjustments"] == [{"scalingAdjustment": -1, "metricIntervalUpperBound": "0"}]
    assert out["adjustmentType"] == scale_in["adjustmentType"] == "ChangeInCapacity"
    assert out["cooldown"] == 60 and scale_in["cooldown"] == 120


def test_each_alarm_drives_its_own_policy_on_this_cluster_and_service(step):
    policies = {p["name"]: p["outputs"]["arn"] for p in step.of_type("aws:appautoscaling/policy:Policy")}
    alarms = {a["name"]: a["inputs"] for a in step.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    service_name = step.one("aws:ecs/service:Service")["outputs"]["name"]
    high, low = alarms["web-cpu-high"], alarms["web-cpu-low"]
    assert high["alarmActions"] == [policies["web-scale-out"]]
    assert low["alarmActions"] == [policies["web-scale-in"]]
    for alarm in (high, low):
        assert (alarm["namespace"], alarm["metricName"], alarm["statistic"]) == ("AWS/ECS", "CPUUtilization", "Average")
        assert alarm["dimensions"] == {"ClusterName": "main-1234567", "ServiceName": service_name}
    assert (high["threshold"], high["comparisonOperator"]) == (75, "GreaterThanOrEqualToThreshold")
    assert (low["threshold"], low["comparisonOperator"]) == (25, "LessThanOrEqualToThreshold")
    assert high["period"] * high["evaluationPeriods"] <= 120
    assert (low["period"], low["evaluationPeriods"]) == (60, 15)


def test_target_tracking_has_no_step_policies_or_alarms(tracking):
    (policy,) = tracking.of_type("aws:appautoscaling/policy:Policy")
    config = policy["inputs"]["targetTrackingScalingPolicyConfiguration"]
    assert policy["inputs"]["policyType"] == "TargetTrackingScaling"
    assert config["predefinedMetricSpecification"]["predefinedMetricType"] == "ECSServiceAverageCPUUtilization"
    assert config["targetValue"] == 55
    assert not tracking.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert tracking.one("seaport:index:ScaledWebService")["outputs"]["scaling_mode"] == "target-tracking"


def test_outputs(step):
    outputs = step.one("seaport:index:ScaledWebService")["outputs"]
    balancer = step.one("aws:lb/loadBalancer:LoadBalancer")["outputs"]
    assert outputs["alb_dns_name"] == balancer["dnsName"]
    assert outputs["url"] == f"http://{balancer['dnsName']}/"
    assert outputs["target_group_arn"] == step.one("aws:lb/targetGroup:TargetGroup")["outputs"]["arn"]
    assert outputs["service_name"] == step.one("aws:ecs/service:Service")["outputs"]["name"]
    assert outputs["scaling_mode"] == "step"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"min_count": 3, "desired_count": 2, "max_count": 4}, "desired_count=2 must be between min_count=3 and"),
        ({"desired_count": 5}, "desired_count=5 must be between min_count=1 and max_count=3"),
        ({"scale_in_cpu_percent": 80}, "must satisfy 0 < in < out <= 100"),
        ({"scaling_mode": "simple"}, "scaling_mode='simple' must be one of step, target-tracking"),
        ({"container": {"image": "nginx"}}, "container.port is required"),
        ({"certificate_arn": "not-an-arn"}, "is not an ACM certificate ARN"),
        ({"health_check_path": "health"}, "must be a URL path starting with /"),
        ({"instance_security_group_id": None}, "instance_security_group_id is required"),
        ({"container": {"image": "nginx", "port": 80, "environment": {"SECRET_KEY": "x"}}}, "looks like a secret"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(args, message):
    seen = {}

    def program():
        try:
            ScaledWebService("web", {**BASE, **args})
        except InvalidArgument as error:
            seen["error"] = str(error)

    plan = run(program)
    assert message in seen["error"]
    assert plan.resources == []
