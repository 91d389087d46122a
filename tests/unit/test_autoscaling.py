"""ServiceAutoscaling on its own: step scaling (+1/-1 on CPU alarms), target tracking, bounds and bad arguments."""

import pytest

from seaport import ContainerService, ServiceAutoscaling
from seaport.tools.testing import run
from tests.unit.references import CLUSTER
from tests.unit.refusals import assert_refused, refused_paths

SERVICE = "api-1234567"


def scaling_plan(**args):
    return run(lambda: ServiceAutoscaling("api", {"cluster": CLUSTER, "service_name": SERVICE, **args}))


@pytest.fixture(scope="module")
def step():
    return scaling_plan(scaling_mode="step", min_tasks=1, max_tasks=6, tags={"team": "api"})


@pytest.fixture(scope="module")
def tracking():
    return scaling_plan()


def policies(plan):
    return {p["name"]: p for p in plan.of_type("aws:appautoscaling/policy:Policy")}


def alarms(plan):
    return {a["name"]: a["inputs"] for a in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}


def test_the_scalable_target_is_the_services_desired_count_within_the_bounds(step):
    target = step.one("aws:appautoscaling/target:Target")
    assert target["inputs"]["serviceNamespace"] == "ecs"
    assert target["inputs"]["scalableDimension"] == "ecs:service:DesiredCount"
    assert target["inputs"]["resourceId"] == f"service/{CLUSTER['name']}/{SERVICE}"
    assert (target["inputs"]["minCapacity"], target["inputs"]["maxCapacity"]) == (1, 6)
    outputs = step.one("seaport:index:ServiceAutoscaling")["outputs"]
    assert outputs == {"resource_id": f"service/{CLUSTER['name']}/{SERVICE}", "scaling_mode": "step"}


def test_default_bounds_keep_two_tasks_and_allow_four(tracking):
    target = tracking.one("aws:appautoscaling/target:Target")["inputs"]
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 4)


def test_step_mode_adds_and_removes_one_task(step):
    found = policies(step)
    assert set(found) == {"api-scale-out", "api-scale-in"}
    target = step.one("aws:appautoscaling/target:Target")["inputs"]
    for policy in found.values():
        inputs = policy["inputs"]
        assert inputs["policyType"] == "StepScaling"
        assert (inputs["serviceNamespace"], inputs["scalableDimension"], inputs["resourceId"]) == (
            target["serviceNamespace"],
            target["scalableDimension"],
            target["resourceId"],
        )
    out = found["api-scale-out"]["inputs"]["stepScalingPolicyConfiguration"]
    scale_in = found["api-scale-in"]["inputs"]["stepScalingPolicyConfiguration"]
    assert out["stepAdjustments"] == [{"scalingAdjustment": 1, "metricIntervalLowerBound": "0"}]
    assert scale_in["stepAdjustments"] == [{"scalingAdjustment": -1, "metricIntervalUpperBound": "0"}]
    assert out["adjustmentType"] == scale_in["adjustmentType"] == "ChangeInCapacity"
    assert out["metricAggregationType"] == scale_in["metricAggregationType"] == "Average"
    assert (out["cooldown"], scale_in["cooldown"]) == (60, 120)


def test_step_alarms_watch_one_minute_cpu_for_2_and_15_periods_at_the_thresholds(step):
    found = alarms(step)
    assert set(found) == {"api-cpu-high", "api-cpu-low"}
    high, low = found["api-cpu-high"], found["api-cpu-low"]
    for alarm in (high, low):
        assert (alarm["namespace"], alarm["metricName"], alarm["statistic"]) == ("AWS/ECS", "CPUUtilization", "Average")
        assert alarm["dimensions"] == {"ClusterName": CLUSTER["name"], "ServiceName": SERVICE}
        assert alarm["period"] == 60 and alarm["unit"] == "Percent"
        assert alarm["datapointsToAlarm"] == alarm["evaluationPeriods"]
        assert alarm["treatMissingData"] == "missing"
    assert (high["evaluationPeriods"], high["threshold"], high["comparisonOperator"]) == (
        2,
        75,
        "GreaterThanOrEqualToThreshold",
    )
    assert (low["evaluationPeriods"], low["threshold"], low["comparisonOperator"]) == (
        15,
        25,
        "LessThanOrEqualToThreshold",
    )


def test_each_alarm_acts_on_its_own_policy(step):
    arns = {name: p["outputs"]["arn"] for name, p in policies(step).items()}
    found = alarms(step)
    assert found["api-cpu-high"]["alarmActions"] == [arns["api-scale-out"]]
    assert found["api-cpu-low"]["alarmActions"] == [arns["api-scale-in"]]
    by_name = {a["name"]: a for a in step.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert step.depends_on(by_name["api-cpu-high"], policies(step)["api-scale-out"])
    assert step.depends_on(by_name["api-cpu-low"], policies(step)["api-scale-in"])


def test_step_thresholds_and_cooldowns_are_arguments():
    plan = scaling_plan(
        scaling_mode="step",
        scale_out_cpu_percent=80,
        scale_in_cpu_percent=20,
        scale_out_cooldown_seconds=30,
        scale_in_cooldown_seconds=300,
    )
    found = alarms(plan)
    assert (found["api-cpu-high"]["threshold"], found["api-cpu-low"]["threshold"]) == (80, 20)
    configs = {n: p["inputs"]["stepScalingPolicyConfiguration"] for n, p in policies(plan).items()}
    assert (configs["api-scale-out"]["cooldown"], configs["api-scale-in"]["cooldown"]) == (30, 300)


def test_target_tracking_is_the_default_and_lets_aws_manage_the_alarms(tracking):
    (policy,) = tracking.of_type("aws:appautoscaling/policy:Policy")
    inputs = policy["inputs"]
    assert inputs["policyType"] == "TargetTrackingScaling"
    assert inputs["resourceId"] == f"service/{CLUSTER['name']}/{SERVICE}"
    config = inputs["targetTrackingScalingPolicyConfiguration"]
    assert config["predefinedMetricSpecification"] == {"predefinedMetricType": "ECSServiceAverageCPUUtilization"}
    assert (config["targetValue"], config["scaleOutCooldown"], config["scaleInCooldown"]) == (60, 60, 120)
    assert not tracking.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert tracking.one("seaport:index:ServiceAutoscaling")["outputs"]["scaling_mode"] == "target-tracking"


def test_target_tracking_follows_its_arguments():
    plan = scaling_plan(target_cpu_percent=45, scale_out_cooldown_seconds=15, scale_in_cooldown_seconds=600)
    config = plan.one("aws:appautoscaling/policy:Policy")["inputs"]["targetTrackingScalingPolicyConfiguration"]
    assert (config["targetValue"], config["scaleOutCooldown"], config["scaleInCooldown"]) == (45, 15, 600)


def test_tags_reach_the_target_and_the_alarms(step):
    assert step.one("aws:appautoscaling/target:Target")["inputs"]["tags"] == {"team": "api"}
    assert all(a["tags"] == {"team": "api"} for a in alarms(step).values())


def test_every_child_is_parented_to_the_component(step):
    component = step.one("seaport:index:ServiceAutoscaling")
    custom = [r for r in step.resources if r["custom"]]
    assert custom and all(r["parent"] == component["urn"] for r in custom)


def test_scaling_a_container_service_waits_for_the_service():
    def program():
        service = ContainerService(
            "api", {"cluster": CLUSTER, "container": {"image": "nginx:1.27"}, "autoscaled": True}
        )
        ServiceAutoscaling("api", {"cluster": CLUSTER, "service_name": service.service_name})

    plan = run(program)
    service = plan.one("aws:ecs/service:Service")
    target = plan.one("aws:appautoscaling/target:Target")
    assert target["inputs"]["resourceId"] == f"service/{CLUSTER['name']}/{service['outputs']['name']}"
    assert plan.depends_on(target, service)


@pytest.mark.parametrize(
    ("args", "path", "message"),
    [
        ({"cluster": None}, "cluster", "is required"),
        ({"service_name": None}, "service_name", "is required"),
        ({"min_tasks": 0}, "min_tasks", "min_tasks=0 must be between 1 and 1000"),
        ({"max_tasks": 1001}, "max_tasks", "max_tasks=1001 must be between 1 and 1000"),
        ({"min_tasks": 5, "max_tasks": 4}, "min_tasks", "min_tasks=5 must be <= max_tasks=4"),
        ({"scaling_mode": "simple"}, "scaling_mode", "scaling_mode='simple' must be one of step, target-tracking"),
        ({"scale_in_cpu_percent": 75}, "scale_in_cpu_percent", "must be < scale_out_cpu_percent=75"),
        ({"scale_out_cpu_percent": 101}, "scale_out_cpu_percent", "must be between 2 and 100"),
        ({"scale_in_cpu_percent": 0}, "scale_in_cpu_percent", "must be between 1 and 99"),
        ({"target_cpu_percent": 95}, "target_cpu_percent", "target_cpu_percent=95 must be between 10 and 90"),
        ({"scale_out_cooldown_seconds": -1}, "scale_out_cooldown_seconds", "must be between 0 and 3600"),
        ({"scale_in_cooldown_seconds": 4000}, "scale_in_cooldown_seconds", "must be between 0 and 3600"),
        ({"min_tasks": 2.5}, "min_tasks", "must be a whole number"),
        ({"tags": {"aws:x": "y"}}, "tags", "has tag key 'aws:x'"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(args, path, message):
    assert_refused(
        lambda: ServiceAutoscaling("api", {"cluster": CLUSTER, "service_name": SERVICE, **args}), path, message
    )


def test_every_bad_argument_is_reported_at_once():
    args = {
        "cluster": CLUSTER,
        "min_tasks": 0,
        "target_cpu_percent": 95,
        "scale_out_cooldown_seconds": -1,
        "scaling_mode": "simple",
    }
    assert refused_paths(lambda: ServiceAutoscaling("api", args)) == [
        "min_tasks",
        "scale_out_cooldown_seconds",
        "scaling_mode",
        "service_name",
        "target_cpu_percent",
    ]
