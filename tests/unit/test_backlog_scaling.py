"""ServiceAutoscaling in backlog mode: target tracking on ready messages per running task (metric math over the
apps' QueueDepth and ECS's running task count), its bounds and arguments, and the reaction make plan prints."""

import pytest

from seaport import ServiceAutoscaling
from seaport.contract import telemetry
from seaport.tools import reactions as scaling
from seaport.tools.synth import summary
from seaport.tools.testing import run
from tests.unit import watched
from tests.unit.monitored import stack_plan
from tests.unit.references import CLUSTER
from tests.unit.refusals import assert_refused

SERVICE = "receive-1234567"
BACKLOG = {"scaling_mode": "backlog", "queue_name": "messages", "min_tasks": 1, "max_tasks": 8}


def backlog_plan(**args):
    return run(lambda: ServiceAutoscaling("receive", {"cluster": CLUSTER, "service_name": SERVICE, **BACKLOG, **args}))


@pytest.fixture(scope="module")
def plan():
    return backlog_plan(target_backlog_per_task=250, scale_out_cooldown_seconds=30)


def config(plan):
    (policy,) = plan.of_type("aws:appautoscaling/policy:Policy")
    assert policy["inputs"]["policyType"] == "TargetTrackingScaling"
    return policy["inputs"]["targetTrackingScalingPolicyConfiguration"]


def queries(plan):
    return {q["id"]: q for q in config(plan)["customizedMetricSpecification"]["metrics"]}


def test_it_tracks_ready_messages_per_running_task(plan):
    found = queries(plan)
    assert found["backlog_per_task"]["expression"] == "depth / tasks"
    assert [q["id"] for q in found.values() if q["returnData"]] == ["backlog_per_task"]  # one series returned
    depth, tasks = found["depth"]["metricStat"], found["tasks"]["metricStat"]
    assert depth == {
        "metric": {
            "namespace": telemetry.NAMESPACE,
            "metricName": telemetry.QUEUE_DEPTH,
            # this cluster's queue: another stack's queue of the same name does not scale this service
            "dimensions": [
                {"name": telemetry.CLUSTER, "value": CLUSTER["name"]},
                {"name": telemetry.QUEUE, "value": "messages"},
            ],
        },
        "stat": "Maximum",  # the highest any app measured in the minute (both report it)
    }
    # The running task count without Container Insights: one CPUUtilization sample per RUNNING task a minute.
    assert tasks == {
        "metric": {
            "namespace": "AWS/ECS",
            "metricName": "CPUUtilization",
            "dimensions": [
                {"name": "ClusterName", "value": CLUSTER["name"]},
                {"name": "ServiceName", "value": SERVICE},
            ],
        },
        "stat": "SampleCount",
    }


def test_query_ids_are_valid_and_the_expression_uses_only_them(plan):
    found = queries(plan)
    assert all(ident[0].islower() and ident.replace("_", "").isalnum() for ident in found)
    assert watched.undefined_ids(found["backlog_per_task"]["expression"], set(found)) == set()


def test_target_cooldowns_and_bounds(plan):
    settings = config(plan)
    assert (settings["targetValue"], settings["scaleOutCooldown"], settings["scaleInCooldown"]) == (250, 30, 120)
    assert "predefinedMetricSpecification" not in settings
    target = plan.one("aws:appautoscaling/target:Target")["inputs"]
    assert (target["minCapacity"], target["maxCapacity"]) == (1, 8)
    assert target["resourceId"] == f"service/{CLUSTER['name']}/{SERVICE}"
    assert plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm") == []  # AWS manages the alarms
    assert plan.one("seaport:index:ServiceAutoscaling")["outputs"]["scaling_mode"] == "backlog"


def test_the_default_target_is_100_messages_per_task():
    assert config(backlog_plan())["targetValue"] == 100


def test_cpu_modes_are_unchanged():
    tracking = run(lambda: ServiceAutoscaling("api", {"cluster": CLUSTER, "service_name": "api"}))
    settings = config(tracking)
    assert settings["predefinedMetricSpecification"] == {"predefinedMetricType": "ECSServiceAverageCPUUtilization"}
    assert "customizedMetricSpecification" not in settings


@pytest.mark.parametrize(
    ("args", "path", "message"),
    [
        ({"queue_name": None}, "queue_name", "is required with scaling_mode='backlog'"),
        ({"queue_name": "amq.work"}, "queue_name", "not start with amq."),
        ({"target_backlog_per_task": 0}, "target_backlog_per_task", "must be between 1 and 1000000"),
        ({"scaling_mode": "queue"}, "scaling_mode", "must be one of step, target-tracking, backlog"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(args, path, message):
    assert_refused(
        lambda: ServiceAutoscaling("receive", {"cluster": CLUSTER, "service_name": SERVICE, **BACKLOG, **args}),
        path,
        message,
    )


# -- how fast it reacts, as make plan prints it ------------------------------------------------------------------


def test_the_backlog_reaction_adds_the_apps_record_interval(plan):
    (reaction,) = scaling.reaction_times(plan)
    assert reaction.mode == "backlog"
    assert (reaction.scale_out_seconds, reaction.scale_in_seconds) == (3 * 60 + 30, 15 * 60 + 120)
    # 210 s of alarm and cooldown + 60 s record interval; + 60 s metric delay + 60 s task start (+ 180 s instance)
    assert "(backlog): scale-out 210 s (end to end about 390 s, 570 s when a new instance is needed)" in (
        reaction.describe()
    )


def test_make_plan_prints_receive_like_the_portal():
    plan = stack_plan("dev")
    text = summary(plan, [])
    by_mode = {r.mode: r for r in scaling.reaction_times(plan)}
    assert set(by_mode) == {"step", "backlog"}  # the portal (dev scales it in steps) and receive
    receive = by_mode["backlog"]
    assert receive.resource_id.endswith(
        "/" + plan.named("messaging-receive", "aws:ecs/service:Service")["outputs"]["name"]
    )
    assert f"  {receive.describe()}" in text
    # receive scales on the backlog its own stack's apps report: the Cluster they write is the one tracked
    ((_, (_, _, dimensions)),) = [m for m in watched.scaling_metrics(plan) if m[1][0] == telemetry.NAMESPACE]
    cluster = plan.one("aws:ecs/cluster:Cluster")["outputs"]["name"]
    assert dimensions == {telemetry.CLUSTER: cluster, telemetry.QUEUE: "messages"}
    assert watched.apps_clusters(plan) == {"send": cluster, "receive": cluster}
    assert "(backlog): scale-out 240 s (end to end about 420 s, 600 s when a new instance is needed)" in text
