"""ScaledWebService: ALB, security groups, target group, listeners, the service, autoscaling and ordering."""

import json

import pytest

from seaport import ScaledWebService
from seaport.tools.testing import run
from tests.unit.programs import on_a_new_cluster
from tests.unit.references import CLUSTER, DISCOVERY, INSTANCE_SG, PUBLIC_SUBNETS, VPC_ID
from tests.unit.refusals import assert_refused, refused_paths

CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0d1e2f3a-1234-4cde-8f00-123456789abc"
CONTAINER = {"image": "nginx:1.27", "port": 8080}


def web_plan(**args):
    return run(lambda: ScaledWebService("web", {"cluster": CLUSTER, "container": CONTAINER, **args}))


@pytest.fixture(scope="module")
def step():
    return web_plan(autoscaling={"scaling_mode": "step", "min_tasks": 1, "max_tasks": 3}, service={"desired_tasks": 2})


@pytest.fixture(scope="module")
def tracking():
    return web_plan(autoscaling={"scaling_mode": "target-tracking", "target_cpu_percent": 55})


@pytest.fixture(scope="module")
def secure():
    return web_plan(load_balancer={"certificate_arn": CERT})


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
    assert alb_group(step)["inputs"]["vpcId"] == VPC_ID


def test_https_opens_443_and_redirects_http(secure):
    world_ports = sorted(r["inputs"]["fromPort"] for r in ingress(secure) if r["inputs"].get("cidrIpv4"))
    assert world_ports == [80, 443]
    listeners = {r["inputs"]["port"]: r["inputs"] for r in secure.of_type("aws:lb/listener:Listener")}
    assert listeners[443]["protocol"] == "HTTPS" and listeners[443]["certificateArn"] == CERT
    assert listeners[443]["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    target_group = secure.one("aws:lb/targetGroup:TargetGroup")["outputs"]["arn"]
    assert listeners[443]["defaultActions"] == [{"type": "forward", "targetGroupArn": target_group}]
    (redirect,) = listeners[80]["defaultActions"]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}
    assert secure.one("seaport:index:ScaledWebService")["outputs"]["url"].startswith("https://")


def test_alb_reaches_instances_only_on_the_ephemeral_range_from_its_own_group(step):
    (to_instances,) = [r["inputs"] for r in ingress(step) if r["inputs"]["securityGroupId"] == INSTANCE_SG]
    assert to_instances["referencedSecurityGroupId"] == alb_group(step)["outputs"]["id"]
    assert (to_instances["ipProtocol"], to_instances["fromPort"], to_instances["toPort"]) == ("tcp", 32768, 65535)
    assert "cidrIpv4" not in to_instances
    (egress,) = step.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    assert egress["inputs"]["securityGroupId"] == alb_group(step)["outputs"]["id"]
    assert egress["inputs"]["referencedSecurityGroupId"] == INSTANCE_SG
    assert (egress["inputs"]["fromPort"], egress["inputs"]["toPort"]) == (32768, 65535)


def test_internet_facing_alb_over_public_subnets_drops_invalid_headers(step):
    balancer = step.one("aws:lb/loadBalancer:LoadBalancer")["inputs"]
    assert balancer["internal"] is False and balancer["loadBalancerType"] == "application"
    assert balancer["subnets"] == PUBLIC_SUBNETS  # the cluster network's public subnets, not its instance ones
    assert balancer["dropInvalidHeaderFields"] is True
    assert balancer["securityGroups"] == [alb_group(step)["outputs"]["id"]]
    assert balancer["enableDeletionProtection"] is False
    protected = web_plan(load_balancer={"deletion_protection": True})
    assert protected.one("aws:lb/loadBalancer:LoadBalancer")["inputs"]["enableDeletionProtection"] is True


def test_target_group_uses_instance_targets_health_path_and_short_deregistration(step):
    group = step.one("aws:lb/targetGroup:TargetGroup")["inputs"]
    assert group["targetType"] == "instance" and group["vpcId"] == VPC_ID
    assert group["healthCheck"]["path"] == "/health" and group["healthCheck"]["matcher"] == "200"
    assert group["healthCheck"]["port"] == "traffic-port"
    assert group["deregistrationDelay"] == 30
    custom = web_plan(load_balancer={"health_check_path": "/ready", "deregistration_delay_seconds": 5})
    assert custom.one("aws:lb/targetGroup:TargetGroup")["inputs"]["healthCheck"]["path"] == "/ready"
    assert custom.one("aws:lb/targetGroup:TargetGroup")["inputs"]["deregistrationDelay"] == 5


def test_http_listener_forwards_to_the_target_group_and_the_service_is_attached(step):
    target_group = step.one("aws:lb/targetGroup:TargetGroup")["outputs"]["arn"]
    (listener,) = step.of_type("aws:lb/listener:Listener")
    assert listener["inputs"]["port"] == 80
    assert listener["inputs"]["defaultActions"] == [{"type": "forward", "targetGroupArn": target_group}]
    assert listener["inputs"]["loadBalancerArn"] == step.one("aws:lb/loadBalancer:LoadBalancer")["outputs"]["arn"]
    service = step.one("aws:ecs/service:Service")["inputs"]
    assert service["loadBalancers"] == [{"targetGroupArn": target_group, "containerName": "web", "containerPort": 8080}]
    assert service["healthCheckGracePeriodSeconds"] == 60
    task = step.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]
    assert json.loads(task["containerDefinitions"])[0]["portMappings"][0]["hostPort"] == 0


@pytest.mark.parametrize("plan_name", ["step", "secure"])
def test_the_service_waits_for_every_listener(plan_name, request):
    """ECS registers targets only in a target group a listener uses (deploy-day issue 2)."""
    plan = request.getfixturevalue(plan_name)
    service = plan.one("aws:ecs/service:Service")
    listeners = plan.of_type("aws:lb/listener:Listener")
    assert len(listeners) == (2 if plan_name == "secure" else 1)
    assert all(plan.depends_on(service, listener) for listener in listeners)


def test_on_a_cluster_in_the_same_program_the_service_waits_for_the_capacity_provider_association():
    plan = on_a_new_cluster(ScaledWebService, "web", CONTAINER)
    association = plan.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    service = plan.one("aws:ecs/service:Service")
    assert plan.depends_on(service, association)
    assert all(plan.depends_on(service, listener) for listener in plan.of_type("aws:lb/listener:Listener"))
    cluster_name = plan.one("aws:ecs/cluster:Cluster")["outputs"]["name"]
    target = plan.one("aws:appautoscaling/target:Target")["inputs"]
    assert target["resourceId"] == f"service/{cluster_name}/{service['outputs']['name']}"


def test_the_web_service_is_a_container_service_scaled_by_service_autoscaling(step):
    component = step.one("seaport:index:ScaledWebService")
    (service,) = step.children(component, "seaport:index:ContainerService")
    (scaler,) = step.children(component, "seaport:index:ServiceAutoscaling")
    assert service["name"] == scaler["name"] == "web"
    assert step.one("aws:ecs/service:Service")["inputs"]["desiredCount"] == 2


def test_scalable_target_bounds_and_desired_count(step):
    target = step.one("aws:appautoscaling/target:Target")["inputs"]
    service = step.one("aws:ecs/service:Service")
    assert target["resourceId"] == f"service/{CLUSTER['name']}/{service['outputs']['name']}"
    assert target["scalableDimension"] == "ecs:service:DesiredCount"
    assert target["minCapacity"] <= service["inputs"]["desiredCount"] <= target["maxCapacity"]
    assert (target["minCapacity"], service["inputs"]["desiredCount"], target["maxCapacity"]) == (1, 2, 3)


def test_the_first_desired_count_defaults_to_the_minimum(tracking):
    target = tracking.one("aws:appautoscaling/target:Target")["inputs"]
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 4)
    assert tracking.one("aws:ecs/service:Service")["inputs"]["desiredCount"] == 2


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
        assert alarm["dimensions"] == {"ClusterName": CLUSTER["name"], "ServiceName": service_name}
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


def test_service_options_reach_the_container_service():
    plan = web_plan(
        service={
            "sidecars": [{"name": "helper", "image": "busybox:1.36"}],
            "discovery": DISCOVERY,
            "consul_service": {"name": "portal"},
            "health_check_grace_period_seconds": 120,
            "log_retention_days": 7,
        }
    )
    task = plan.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]
    assert [d["name"] for d in json.loads(task["containerDefinitions"])] == ["web", "helper", "web-registrar"]
    assert plan.one("aws:ecs/service:Service")["inputs"]["healthCheckGracePeriodSeconds"] == 120
    assert plan.one("aws:cloudwatch/logGroup:LogGroup")["inputs"]["retentionInDays"] == 7


def test_tags_reach_the_load_balancer_the_service_and_the_scaling():
    plan = web_plan(tags={"team": "web"}, autoscaling={"scaling_mode": "step"})
    for token in (
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/targetGroup:TargetGroup",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ecs/service:Service",
        "aws:ecs/taskDefinition:TaskDefinition",
        "aws:appautoscaling/target:Target",
    ):
        assert plan.one(token)["inputs"]["tags"]["team"] == "web", token
    for token in ("aws:lb/listener:Listener", "aws:cloudwatch/metricAlarm:MetricAlarm"):
        assert all(r["inputs"]["tags"]["team"] == "web" for r in plan.of_type(token)), token


def test_outputs(step):
    outputs = step.one("seaport:index:ScaledWebService")["outputs"]
    balancer = step.one("aws:lb/loadBalancer:LoadBalancer")["outputs"]
    assert outputs["alb_dns_name"] == balancer["dnsName"]
    assert outputs["url"] == f"http://{balancer['dnsName']}/"
    assert outputs["load_balancer_arn"] == balancer["arn"]
    assert outputs["load_balancer_arn_suffix"] == balancer["arnSuffix"]
    assert outputs["target_group_arn"] == step.one("aws:lb/targetGroup:TargetGroup")["outputs"]["arn"]
    assert outputs["alb_security_group_id"] == alb_group(step)["outputs"]["id"]
    assert outputs["service_name"] == step.one("aws:ecs/service:Service")["outputs"]["name"]
    assert outputs["scaling_mode"] == "step"


@pytest.mark.parametrize(
    ("args", "path", "message"),
    [
        (
            {"autoscaling": {"min_tasks": 3, "max_tasks": 4}, "service": {"desired_tasks": 2}},
            "service.desired_tasks",
            "desired_tasks=2 must be between autoscaling.min_tasks=3 and autoscaling.max_tasks=4",
        ),
        (
            {"service": {"desired_tasks": 5}},
            "service.desired_tasks",
            "desired_tasks=5 must be between autoscaling.min_tasks=2 and autoscaling.max_tasks=4",
        ),
        (
            {"autoscaling": {"min_tasks": 5, "max_tasks": 4}},
            "autoscaling.min_tasks",
            "min_tasks=5 must be <= max_tasks=4",
        ),
        (
            {"autoscaling": {"scale_in_cpu_percent": 80}},
            "autoscaling.scale_in_cpu_percent",
            "scale_in_cpu_percent=80 must be < scale_out_cpu_percent=75",
        ),
        (
            {"autoscaling": {"scaling_mode": "simple"}},
            "autoscaling.scaling_mode",
            "scaling_mode='simple' must be one of step, target-tracking",
        ),
        ({"container": {"image": "nginx"}}, "container.port", "is required"),
        (
            {"load_balancer": {"certificate_arn": "not-an-arn"}},
            "load_balancer.certificate_arn",
            "is not an ACM certificate ARN",
        ),
        (
            {"load_balancer": {"health_check_path": "health"}},
            "load_balancer.health_check_path",
            "must be a URL path starting with /",
        ),
        (
            {"load_balancer": {"deregistration_delay_seconds": 7200}},
            "load_balancer.deregistration_delay_seconds",
            "must be between 0 and 3600",
        ),
        ({"cluster": None}, "cluster", "is required"),
        # A reference handed over by hand (another stack's ids) must be complete.
        (
            {"cluster": {key: value for key, value in CLUSTER.items() if key != "instance_security_group_id"}},
            "cluster.instance_security_group_id",
            "is required",
        ),
        (
            {"container": {"image": "nginx", "port": 80, "environment": {"SECRET_KEY": "x"}}},
            "container.environment.SECRET_KEY",
            "looks like a secret",
        ),
        ({"service": {"stop_timeout_seconds": 1}}, "service.stop_timeout_seconds", "must be between 2 and 120"),
        # The component's own tags argument, named as the user wrote it.
        ({"tags": {"aws:x": "y"}}, "tags", "has tag key 'aws:x'"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(args, path, message):
    assert_refused(lambda: ScaledWebService("web", {"cluster": CLUSTER, "container": CONTAINER, **args}), path, message)


def test_every_bad_argument_is_reported_at_once():
    args = {
        "cluster": CLUSTER,
        "container": {"image": "nginx", "environment": {"API_TOKEN": "t"}},
        "service": {"log_retention_days": 2},
        "load_balancer": {"certificate_arn": "not-an-arn", "health_check_path": "health"},
        "autoscaling": {"min_tasks": 0, "target_cpu_percent": 95},
    }
    assert refused_paths(lambda: ScaledWebService("web", args)) == [
        "autoscaling.min_tasks",
        "autoscaling.target_cpu_percent",
        "container.environment.API_TOKEN",
        "container.port",
        "load_balancer.certificate_arn",
        "load_balancer.health_check_path",
        "service.log_retention_days",
    ]
