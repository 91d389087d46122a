"""ServiceAutoscaling: Application Auto Scaling for any ECS service, on CPU (step or target tracking) or on a
queue's backlog per running task (target tracking on metric math)."""

from enum import StrEnum
from typing import Any, Required, TypedDict

import pulumi
import pulumi_aws as aws

from . import outputs, references
from . import validation as check
from .args import Problem, Problems, raise_if, with_defaults
from .contract import telemetry
from .references import ClusterReference, get

# Step scaling evaluates one-minute CPU averages: out after 2 minutes at or above the
# threshold, in after 15 minutes at or below it (scale out quickly, in slowly).
PERIOD_SECONDS = 60
SCALE_OUT_PERIODS = 2
SCALE_IN_PERIODS = 15
# Backlog mode: the running task count is the SampleCount of the service's one-minute CPUUtilization in AWS/ECS
# (each RUNNING task reports one sample a minute: the ECS developer guide's "Service RUNNING task count"). ECS
# publishes it for every service on EC2 with or without Container Insights, and at no extra cost; Container
# Insights' RunningTaskCount would tie scaling to that paid option.
RUNNING_TASKS = ("AWS/ECS", "CPUUtilization", "SampleCount")
BACKLOG_EXPRESSION = "depth / tasks"


class ScalingMode(StrEnum):
    STEP = "step"
    """Two CloudWatch CPU alarms driving +1 / -1 task step policies (the original design)."""
    TARGET_TRACKING = "target-tracking"
    """AWS keeps average CPU near ``target_cpu_percent`` with alarms it manages."""
    BACKLOG = "backlog"
    """AWS keeps the queue's ready messages per running task near ``target_backlog_per_task`` (target tracking
    on metric math over the apps' ``QueueDepth`` and the service's running task count)."""


DEFAULTS: dict[str, Any] = {
    "min_tasks": 2,
    "max_tasks": 4,
    "scaling_mode": ScalingMode.TARGET_TRACKING,
    "scale_out_cpu_percent": 75,
    "scale_in_cpu_percent": 25,
    "target_cpu_percent": 60,
    "scale_out_cooldown_seconds": 60,
    "scale_in_cooldown_seconds": 120,
    "target_backlog_per_task": 100,
    "tags": {},
}


class AutoscalingOptions(TypedDict, total=False):
    min_tasks: int
    """Fewest tasks autoscaling keeps (1-1000; two survive the loss of one). Default ``2``."""
    max_tasks: int
    """Most tasks autoscaling may run (1-1000). Default ``4``."""
    scaling_mode: ScalingMode
    """``target-tracking`` or ``step``. Default ``"target-tracking"``."""
    scale_out_cpu_percent: int
    """Step scaling: add a task when average CPU is at or above this for 2 minutes. Default ``75``."""
    scale_in_cpu_percent: int
    """Step scaling: remove a task when average CPU is at or below this for 15 minutes. Default ``25``."""
    target_cpu_percent: int
    """Target tracking: keep average CPU near this (10-90). Default ``60``."""
    scale_out_cooldown_seconds: int
    """Seconds after a scale-out before the next scaling activity (0-3600). Default ``60``."""
    scale_in_cooldown_seconds: int
    """Seconds after a scale-in before the next scale-in (0-3600). Default ``120``."""
    queue_name: pulumi.Input[str]
    """Backlog mode: the queue whose ready messages (``Seaport/Messaging`` ``QueueDepth`` of this cluster,
    written by send and receive) the tasks work off. Required with ``scaling_mode="backlog"``; Default: none."""
    target_backlog_per_task: int
    """Backlog mode: ready messages each running task should carry; more adds tasks, fewer removes them
    (1-1000000). Default ``100``."""


class ServiceAutoscalingArgs(AutoscalingOptions, total=False):
    cluster: Required[pulumi.Input[ClusterReference]]
    """The cluster the service runs on (``EcsCluster.reference``). Required."""
    service_name: Required[pulumi.Input[str]]
    """Name of the ECS service to scale (``ContainerService.service_name``). Required."""
    tags: dict[str, str]
    """Tags added to every resource. Default ``{}``."""


class ServiceAutoscaling(pulumi.ComponentResource):
    """Keeps an ECS service's task count between ``min_tasks`` and ``max_tasks`` on its average CPU.

    ``target-tracking`` lets AWS manage the alarms; ``step`` creates the
    original design's two CloudWatch alarms (out at >= 75 % for 2 minutes, in at
    <= 25 % for 15) with +1 / -1 task steps, its defects fixed (its steps were
    0, and its alarms needed an hour of data). The service should be created
    with ``autoscaled=True`` so deployments leave the count to this.
    """

    resource_id: pulumi.Output[str]
    """The scalable target, ``service/<cluster>/<service>``."""
    scaling_mode: pulumi.Output[str]
    """``step`` or ``target-tracking``."""

    def __init__(self, name: str, args: ServiceAutoscalingArgs, opts: pulumi.ResourceOptions | None = None):
        raise_if(problems(args))
        super().__init__("seaport:index:ServiceAutoscaling", name, None, opts)
        a = with_defaults(args, DEFAULTS)
        cluster_name = get(a["cluster"], "name")
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.concat("service/", cluster_name, "/", a["service_name"]),
            min_capacity=a["min_tasks"],
            max_capacity=a["max_tasks"],
            tags=a["tags"],
            opts=pulumi.ResourceOptions(parent=self),
        )
        if a["scaling_mode"] == ScalingMode.TARGET_TRACKING:
            self._target_tracking(name, a, target)
        elif a["scaling_mode"] == ScalingMode.BACKLOG:
            self._backlog(name, a, target, cluster_name)
        else:
            dimensions = {"ClusterName": cluster_name, "ServiceName": a["service_name"]}
            self._step(name, a, target, dimensions, "out")
            self._step(name, a, target, dimensions, "in")
        outputs.register(
            self, resource_id=target.resource_id, scaling_mode=pulumi.Output.from_input(str(a["scaling_mode"]))
        )

    def _target_tracking(self, name: str, a: dict[str, Any], target: aws.appautoscaling.Target) -> None:
        metric = aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs
        self._tracking(
            f"{name}-cpu-target",
            a,
            target,
            a["target_cpu_percent"],
            predefined_metric_specification=metric(predefined_metric_type="ECSServiceAverageCPUUtilization"),
        )

    def _backlog(
        self, name: str, a: dict[str, Any], target: aws.appautoscaling.Target, cluster_name: pulumi.Output[str]
    ) -> None:
        """Target tracking on ready messages per running task: ``depth / tasks``, one-minute data."""
        self._tracking(
            f"{name}-backlog-target",
            a,
            target,
            a["target_backlog_per_task"],
            customized_metric_specification=backlog_metric(a["queue_name"], cluster_name, a["service_name"]),
        )

    def _tracking(
        self, name: str, a: dict[str, Any], target: aws.appautoscaling.Target, value: Any, **metric: Any
    ) -> aws.appautoscaling.Policy:
        """A target-tracking policy on ``target`` keeping ``metric`` at ``value``, with the cooldowns of ``a``."""
        return aws.appautoscaling.Policy(
            name,
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            scalable_dimension=target.scalable_dimension,
            resource_id=target.resource_id,
            target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                **metric,
                target_value=value,
                scale_out_cooldown=a["scale_out_cooldown_seconds"],
                scale_in_cooldown=a["scale_in_cooldown_seconds"],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _step(
        self,
        name: str,
        a: dict[str, Any],
        target: aws.appautoscaling.Target,
        dimensions: dict[str, Any],
        direction: str,
    ) -> None:
        """One direction of step scaling: a +1 (or -1) policy and the CPU alarm that triggers it."""
        out = direction == "out"
        threshold = a["scale_out_cpu_percent"] if out else a["scale_in_cpu_percent"]
        periods = SCALE_OUT_PERIODS if out else SCALE_IN_PERIODS
        step = aws.appautoscaling.PolicyStepScalingPolicyConfigurationStepAdjustmentArgs(
            scaling_adjustment=1 if out else -1,
            # Offsets from the alarm threshold: scale out anywhere at/above it, in anywhere at/below it.
            metric_interval_lower_bound="0" if out else None,
            metric_interval_upper_bound=None if out else "0",
        )
        policy = aws.appautoscaling.Policy(
            f"{name}-scale-{direction}",
            policy_type="StepScaling",
            service_namespace=target.service_namespace,
            scalable_dimension=target.scalable_dimension,
            resource_id=target.resource_id,
            step_scaling_policy_configuration=aws.appautoscaling.PolicyStepScalingPolicyConfigurationArgs(
                adjustment_type="ChangeInCapacity",
                cooldown=a["scale_out_cooldown_seconds"] if out else a["scale_in_cooldown_seconds"],
                metric_aggregation_type="Average",
                step_adjustments=[step],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-cpu-{'high' if out else 'low'}",
            alarm_description=f"scale {name} {direction}: average CPU {'>=' if out else '<='} {threshold}% "
            f"for {periods} minute(s)",
            namespace="AWS/ECS",
            metric_name="CPUUtilization",
            statistic="Average",
            unit="Percent",
            dimensions=dimensions,
            period=PERIOD_SECONDS,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            threshold=threshold,
            comparison_operator="GreaterThanOrEqualToThreshold" if out else "LessThanOrEqualToThreshold",
            treat_missing_data="missing",
            alarm_actions=[policy.arn],
            tags=a["tags"],
            opts=pulumi.ResourceOptions(parent=self),
        )


# The pulumi-aws types of a customized metric specification made of metric data queries.
_SPEC = "PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecification"
_Spec = getattr(aws.appautoscaling, f"{_SPEC}Args")
_Query = getattr(aws.appautoscaling, f"{_SPEC}MetricArgs")
_Stat = getattr(aws.appautoscaling, f"{_SPEC}MetricMetricStatArgs")
_Metric = getattr(aws.appautoscaling, f"{_SPEC}MetricMetricStatMetricArgs")
_Dimension = getattr(aws.appautoscaling, f"{_SPEC}MetricMetricStatMetricDimensionArgs")


def backlog_metric(
    queue_name: pulumi.Input[str], cluster_name: pulumi.Input[str], service_name: pulumi.Input[str]
) -> Any:
    """The customized metric of backlog mode: the queue's ready messages (the highest any app measured in the
    minute) divided by the service's running tasks. The depth is this cluster's (the apps' ``Cluster``
    dimension): another stack's queue of the same name in the account and region does not scale this one."""
    namespace, metric_name, statistic = RUNNING_TASKS
    depth = _Metric(
        namespace=telemetry.NAMESPACE,
        metric_name=telemetry.QUEUE_DEPTH,
        dimensions=[
            _Dimension(name=key, value=value)
            for key, value in telemetry.queue_dimensions(cluster_name, queue_name).items()
        ],
    )
    tasks = _Metric(
        namespace=namespace,
        metric_name=metric_name,
        dimensions=[
            _Dimension(name="ClusterName", value=cluster_name),
            _Dimension(name="ServiceName", value=service_name),
        ],
    )
    return _Spec(
        metrics=[
            _Query(id="depth", metric_stat=_Stat(metric=depth, stat="Maximum"), return_data=False),
            _Query(id="tasks", metric_stat=_Stat(metric=tasks, stat=statistic), return_data=False),
            _Query(
                id="backlog_per_task", expression=BACKLOG_EXPRESSION, label="ready messages per task", return_data=True
            ),
        ]
    )


def problems(args: ServiceAutoscalingArgs) -> list[Problem]:
    found = Problems()
    found.require(args or {}, "cluster", "service_name")
    found.extend_under("cluster", references.problems((args or {}).get("cluster"), ClusterReference))
    found.extend(options_problems(args))
    return found


def options_problems(options: AutoscalingOptions) -> list[Problem]:
    """Problems of the scaling options alone (what ``ScaledWebService.autoscaling`` carries)."""
    a = with_defaults(options, DEFAULTS)
    found = Problems()
    low, high = a["min_tasks"], a["max_tasks"]
    found.check("min_tasks", low, check.int_between(low, 1, 1000))
    found.check("max_tasks", high, check.int_between(high, 1, 1000))
    if not found and low > high:
        found.check("min_tasks", low, f"must be <= max_tasks={high}")
    found.check("scaling_mode", a["scaling_mode"], check.one_of(a["scaling_mode"], ScalingMode))
    scale_in, scale_out = a["scale_in_cpu_percent"], a["scale_out_cpu_percent"]
    found.check("scale_in_cpu_percent", scale_in, check.int_between(scale_in, 1, 99))
    found.check("scale_out_cpu_percent", scale_out, check.int_between(scale_out, 2, 100))
    if isinstance(scale_in, int) and isinstance(scale_out, int) and scale_in >= scale_out:
        found.check("scale_in_cpu_percent", scale_in, f"must be < scale_out_cpu_percent={scale_out}")
    target = a["target_cpu_percent"]
    found.check("target_cpu_percent", target, check.int_between(target, 10, 90))
    backlog = a["target_backlog_per_task"]
    found.check("target_backlog_per_task", backlog, check.int_between(backlog, 1, 1_000_000))
    if a["scaling_mode"] == ScalingMode.BACKLOG:
        found.require(a, "queue_name", why="with scaling_mode='backlog' (the queue whose backlog the tasks work off)")
        if isinstance(a.get("queue_name"), str):
            found.check("queue_name", a["queue_name"], check.queue_name(a["queue_name"]))
    for key in ("scale_out_cooldown_seconds", "scale_in_cooldown_seconds"):
        found.check(key, a[key], check.int_between(a[key], 0, 3600))
    found.check("tags", a["tags"], check.tags(a["tags"]))
    return found
