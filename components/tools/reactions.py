"""How fast each autoscaled service reacts, computed from a plan's alarms and policies.

Worst case, counted from the first full minute past the threshold:

- step scaling: the alarm's breaching datapoints (``datapointsToAlarm``, else
  ``evaluationPeriods``) times its ``period``, plus the policy's cooldown (a
  scaling activity may have just happened). A policy whose adjustment is 0
  never changes anything: its reaction is "never" (the original design's).
- target tracking: the alarms AWS creates need 3 one-minute datapoints to
  scale out and 15 to scale in, plus the configured cooldowns.
- backlog (target tracking on the apps' ``QueueDepth`` per running task):
  the same, and its end-to-end estimate adds the apps' EMF record interval
  (a backlog shows in CloudWatch up to one record after it builds).

Those figures leave out what happens around the alarm: metrics reach
CloudWatch about a minute late, a new task pulls, starts and passes its
health checks, and a full cluster first needs a new instance. The end-to-end
estimate adds those (``seaport.rules``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..contract import telemetry
from ..rules import (
    EMF_RECORD_INTERVAL_SECONDS,
    TARGET_TRACKING_IN_DATAPOINTS,
    TARGET_TRACKING_OUT_DATAPOINTS,
    alarm_seconds,
    end_to_end_seconds,
)
from .testing import Plan


@dataclass(frozen=True)
class Reaction:
    resource_id: str
    """The scalable target, e.g. ``service/<cluster>/<service>``."""
    mode: str
    """``step``, ``target-tracking`` or ``backlog``."""
    scale_out_seconds: int | None
    """None when nothing ever scales out."""
    scale_in_seconds: int | None
    reporting_delay_seconds: int = 0
    """How much later than ECS's own metrics the scaling metric can reach CloudWatch (an app's record interval)."""

    def describe(self) -> str:
        def text(seconds: int | None) -> str:
            return "never" if seconds is None else f"{seconds} s"

        out = text(self.scale_out_seconds)
        if self.scale_out_seconds is not None:
            seconds = self.scale_out_seconds + self.reporting_delay_seconds
            warm = end_to_end_seconds(seconds)
            cold = end_to_end_seconds(seconds, new_instance=True)
            out += f" (end to end about {warm} s, {cold} s when a new instance is needed)"
        return f"{self.resource_id} ({self.mode}): scale-out {out}, scale-in {text(self.scale_in_seconds)}"


def reaction_times(plan: Plan) -> list[Reaction]:
    reactions = []
    policies = plan.of_type("aws:appautoscaling/policy:Policy")
    alarms = plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    for target in plan.of_type("aws:appautoscaling/target:Target"):
        resource_id = target["inputs"]["resourceId"]
        mine = [p for p in policies if p["inputs"].get("resourceId") == resource_id]
        tracking = [p for p in mine if p["inputs"].get("policyType") == "TargetTrackingScaling"]
        if tracking:
            config = tracking[0]["inputs"]["targetTrackingScalingPolicyConfiguration"]
            backlog = _tracks_backlog(config)
            reactions.append(
                Reaction(
                    resource_id,
                    "backlog" if backlog else "target-tracking",
                    TARGET_TRACKING_OUT_DATAPOINTS * 60 + int(config.get("scaleOutCooldown", 0)),
                    None
                    if config.get("disableScaleIn")
                    else TARGET_TRACKING_IN_DATAPOINTS * 60 + int(config.get("scaleInCooldown", 0)),
                    EMF_RECORD_INTERVAL_SECONDS if backlog else 0,
                )
            )
            continue
        out_times, in_times = [], []
        for policy in mine:
            config = policy["inputs"].get("stepScalingPolicyConfiguration") or {}
            adjustments = [int(s.get("scalingAdjustment", 0)) for s in config.get("stepAdjustments", [])]
            arn = policy["outputs"].get("arn")
            for alarm in alarms:
                if arn not in (alarm["inputs"].get("alarmActions") or []):
                    continue
                inputs = alarm["inputs"]
                breach = alarm_seconds(inputs["period"], inputs["evaluationPeriods"], inputs.get("datapointsToAlarm"))
                seconds = breach + int(config.get("cooldown", 0))
                if any(a > 0 for a in adjustments):
                    out_times.append(seconds)
                if any(a < 0 for a in adjustments):
                    in_times.append(seconds)
        if mine:
            reactions.append(
                Reaction(
                    resource_id,
                    "step",
                    max(out_times) if out_times else None,
                    max(in_times) if in_times else None,
                )
            )
    return reactions


def _tracks_backlog(config: dict) -> bool:
    """Whether a target tracking configuration reads the apps' queue depth (backlog mode)."""
    queries = (config.get("customizedMetricSpecification") or {}).get("metrics") or []
    metrics = [((q.get("metricStat") or {}).get("metric") or {}) for q in queries]
    return any(
        (m.get("namespace"), m.get("metricName")) == (telemetry.NAMESPACE, telemetry.QUEUE_DEPTH) for m in metrics
    )
