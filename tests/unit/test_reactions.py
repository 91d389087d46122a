"""Worst-case scaling reaction times, computed from the plan's alarms and policies."""

from seaport.tools import reactions as scaling
from seaport.tools.testing import Plan

RESOURCE = "service/main/web"


def _plan(adjustments, periods, cooldown=60):
    resources = [{"type": "aws:appautoscaling/target:Target", "inputs": {"resourceId": RESOURCE}, "outputs": {}}]
    for index, (adjustment, count) in enumerate(zip(adjustments, periods, strict=True)):
        arn = f"arn:policy/{index}"
        resources.append(
            {
                "type": "aws:appautoscaling/policy:Policy",
                "inputs": {
                    "resourceId": RESOURCE,
                    "policyType": "StepScaling",
                    "stepScalingPolicyConfiguration": {
                        "cooldown": cooldown,
                        "stepAdjustments": [{"scalingAdjustment": adjustment}],
                    },
                },
                "outputs": {"arn": arn},
            }
        )
        resources.append(
            {
                "type": "aws:cloudwatch/metricAlarm:MetricAlarm",
                "inputs": {"alarmActions": [arn], "period": 60, "evaluationPeriods": count},
                "outputs": {},
            }
        )
    return Plan("p", "s", resources)


def test_the_original_design_never_scales():
    # ScalingAdjustment=0 on both policies and 60 one-minute evaluation periods.
    (reaction,) = scaling.reaction_times(_plan([0, 0], [60, 60]))
    assert (reaction.scale_out_seconds, reaction.scale_in_seconds) == (None, None)
    assert "scale-out never, scale-in never" in reaction.describe()


def test_step_scaling_reacts_in_alarm_periods_plus_cooldown():
    (reaction,) = scaling.reaction_times(_plan([1, -1], [2, 15], cooldown=60))
    assert (reaction.scale_out_seconds, reaction.scale_in_seconds) == (2 * 60 + 60, 15 * 60 + 60)


def _portal(plan):
    (reaction,) = [r for r in scaling.reaction_times(plan) if "/portal-" in r.resource_id]
    return reaction


def test_dev_stack_reactions(dev_plan):
    reaction = _portal(dev_plan)
    assert reaction.mode == "step"
    assert reaction.scale_out_seconds == 2 * 60 + 60  # 2 one-minute datapoints + 60 s cooldown
    assert reaction.scale_in_seconds == 15 * 60 + 120


def test_prod_stack_uses_target_tracking_with_its_managed_alarm_datapoints(prod_plan):
    reaction = _portal(prod_plan)
    assert reaction.mode == "target-tracking"
    assert reaction.scale_out_seconds == 3 * 60 + 60
    assert reaction.scale_in_seconds == 15 * 60 + 120


def test_make_plan_prints_the_reaction_times(dev_plan):
    from seaport.tools.synth import summary

    text = summary(dev_plan, [])
    assert "Worst-case scaling reaction" in text
    assert "leaves out about a minute of metric delay" in text
    # 180 s of alarm and cooldown; + 60 s metric delay + 60 s task start (+ 180 s for a new instance)
    assert "(step): scale-out 180 s (end to end about 300 s, 480 s when a new instance is needed)" in text
    assert "scale-in 1020 s" in text
