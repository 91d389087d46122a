"""seaport's guardrails as pulumi-policy rules (all mandatory).

``pulumi preview --policy-pack policy`` runs them against a real deployment;
``python -m policy.offline build/<stack>/resources.json`` (and the tests) run
the same objects against an offline plan. Properties are the engine's
camelCase names. Every violation names the resource and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from seaport import rules
from seaport.rules import MAX_SCALE_OUT_ALARM_SECONDS, WORLD_CIDRS

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# Resources whose outputs are generated credentials: (type, output properties).
GENERATED_SECRETS = {
    "random:index/randomPassword:RandomPassword": ("result",),
    "random:index/randomBytes:RandomBytes": ("base64", "hex"),
    "random:index/randomUuid4:RandomUuid4": ("result",),
    "random:index/randomUuid:RandomUuid": ("result",),
    "random:index/randomString:RandomString": ("result",),
}

# Of those, the outputs the random provider itself marks secret; the others must be asked for
# (additional_secret_outputs), or the state file keeps the value in clear.
PROVIDER_SECRET_OUTPUTS = {
    "random:index/randomPassword:RandomPassword": ("result",),
    "random:index/randomBytes:RandomBytes": ("base64", "hex"),
}

INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
SCALING_POLICY = "aws:appautoscaling/policy:Policy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ECS_SERVICE = "aws:ecs/service:Service"
VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"


def _where(name: str, resource_type: str) -> str:
    return f"{name} ({resource_type})"


# -- ingress ---------------------------------------------------------------------------------


def ingress_rules(resource_type: str, props: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every ingress rule a resource declares, normalised to {protocol, from, to, cidrs, group}."""
    if resource_type == INGRESS_RULE:
        cidrs = [c for c in (props.get("cidrIpv4"), props.get("cidrIpv6")) if c]
        yield _rule(
            props.get("ipProtocol"), props.get("fromPort"), props.get("toPort"), cidrs, props.get("securityGroupId")
        )
    elif resource_type == LEGACY_RULE and props.get("type") == "ingress":
        cidrs = list(props.get("cidrBlocks") or []) + list(props.get("ipv6CidrBlocks") or [])
        yield _rule(
            props.get("protocol"), props.get("fromPort"), props.get("toPort"), cidrs, props.get("securityGroupId")
        )
    elif resource_type == SECURITY_GROUP:
        for inline in props.get("ingress") or []:
            cidrs = list(inline.get("cidrBlocks") or []) + list(inline.get("ipv6CidrBlocks") or [])
            yield _rule(inline.get("protocol"), inline.get("fromPort"), inline.get("toPort"), cidrs, props.get("id"))


def _rule(protocol, low, high, cidrs, group) -> dict[str, Any]:
    all_traffic = str(protocol) in ("-1", "all")
    return {
        "protocol": "all" if all_traffic else str(protocol),
        "from": 0 if all_traffic or low is None else int(low),
        "to": 65535 if all_traffic or high is None else int(high),
        "cidrs": cidrs,
        "group": group,
    }


def _no_ssh(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for rule in ingress_rules(args.resource_type, args.props):
        if rule["from"] <= 22 <= rule["to"]:
            report(
                f"{_where(args.name, args.resource_type)} admits port 22 ({rule['protocol']} "
                f"{rule['from']}-{rule['to']}). Fix: remove the rule; reach instances with SSM Session Manager."
            )


def _world_ingress_only_on_alb_listeners(args: StackValidationArgs, report: ReportViolation) -> None:
    listener_ports: dict[str, set[int]] = {}  # load balancer ARN -> listener ports
    for r in args.resources:
        if r.resource_type == LISTENER and r.props.get("port") is not None:
            listener_ports.setdefault(r.props.get("loadBalancerArn"), set()).add(int(r.props["port"]))
    open_ports: dict[str, set[int]] = {}  # security group id -> ports its internet-facing ALBs listen on
    for r in args.resources:
        if r.resource_type == LOAD_BALANCER and not r.props.get("internal", False):
            ports = listener_ports.get(r.props.get("arn"), set())
            for group in r.props.get("securityGroups") or []:
                open_ports.setdefault(group, set()).update(ports)
    for r in args.resources:
        for rule in ingress_rules(r.resource_type, r.props):
            if not any(c in WORLD_CIDRS for c in rule["cidrs"]):
                continue
            allowed = open_ports.get(rule["group"], set())
            if rule["protocol"] != "tcp" or rule["from"] != rule["to"] or rule["from"] not in allowed:
                report(
                    f"{_where(r.name, r.resource_type)} opens {rule['protocol']} {rule['from']}-{rule['to']} to the "
                    "internet on a group that is not an internet-facing load balancer listening on that port. "
                    "Fix: admit a security group instead of 0.0.0.0/0 or ::/0.",
                    r.urn,
                )


# -- instances and storage ---------------------------------------------------------------------


def _imdsv2(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in ("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"):
        return
    options = args.props.get("metadataOptions") or {}
    if options.get("httpTokens") != "required":
        report(
            f"{_where(args.name, args.resource_type)} allows IMDSv1 (metadataOptions.httpTokens is "
            f"{options.get('httpTokens')!r}). Fix: set metadataOptions.httpTokens to 'required'."
        )


def _encrypted_volumes(args: ResourceValidationArgs, report: ReportViolation) -> None:
    where = _where(args.name, args.resource_type)
    if args.resource_type == "aws:ec2/launchTemplate:LaunchTemplate":
        mappings = args.props.get("blockDeviceMappings") or []
        if not mappings:
            report(f"{where} leaves the root volume to the AMI's default. Fix: map it with ebs.encrypted 'true'.")
        for mapping in mappings:
            if str((mapping.get("ebs") or {}).get("encrypted")).lower() != "true":
                report(
                    f"{where} has an unencrypted volume {mapping.get('deviceName')}. Fix: set ebs.encrypted to 'true'."
                )
    elif args.resource_type == "aws:ebs/volume:Volume" and not args.props.get("encrypted"):
        report(f"{where} is not encrypted. Fix: set encrypted to true.")
    elif args.resource_type == "aws:ec2/instance:Instance" and not (args.props.get("rootBlockDevice") or {}).get(
        "encrypted"
    ):
        report(f"{where} has an unencrypted root volume. Fix: set rootBlockDevice.encrypted to true.")


def _log_retention(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == "aws:cloudwatch/logGroup:LogGroup" and not args.props.get("retentionInDays"):
        report(
            f"{_where(args.name, args.resource_type)} keeps logs forever. "
            "Fix: set retentionInDays (e.g. 30; seaport:logRetentionDays)."
        )


# -- ECS ------------------------------------------------------------------------------------------


def _circuit_breaker(args: ResourceValidationArgs, report: ReportViolation) -> None:
    # A DAEMON service has no desired count for ECS to derive the breaker's threshold from: it never trips there.
    if args.resource_type != "aws:ecs/service:Service" or args.props.get("schedulingStrategy") == "DAEMON":
        return
    breaker = args.props.get("deploymentCircuitBreaker") or {}
    if not (breaker.get("enable") and breaker.get("rollback")):
        report(
            f"{_where(args.name, args.resource_type)} has no deployment circuit breaker with rollback. "
            "Fix: set deploymentCircuitBreaker to {enable: true, rollback: true}."
        )


def _container_definitions(args: ResourceValidationArgs) -> list[dict[str, Any]]:
    if args.resource_type != "aws:ecs/taskDefinition:TaskDefinition":
        return []
    return _definitions(args.props.get("containerDefinitions"))


def _definitions(text: Any) -> list[dict[str, Any]]:
    try:
        return json.loads(text) if isinstance(text, str) else []
    except json.JSONDecodeError:
        return []


def _images_by_digest(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for container in _container_definitions(args):
        image = str(container.get("image", ""))
        if not DIGEST.search(image):
            report(
                f"{_where(args.name, args.resource_type)} runs container {container.get('name')!r} from {image!r}, "
                "a movable tag. Fix: reference the image by digest (repo@sha256:...), e.g. ContainerImage.repo_digest."
            )


def _no_plaintext_secrets(args: StackValidationArgs, report: ReportViolation) -> None:
    """By name (seaport.rules) and by value: no container environment carries a generated credential."""
    values = {
        str(r.props.get(prop))
        for r in args.resources
        for prop in GENERATED_SECRETS.get(r.resource_type, ())
        if r.props.get(prop)
    }
    for r in args.resources:
        if r.resource_type != "aws:ecs/taskDefinition:TaskDefinition":
            continue
        for container in _definitions(r.props.get("containerDefinitions")):
            environment = {str(v.get("name", "")): str(v.get("value", "")) for v in container.get("environment") or []}
            for variable in rules.plaintext_secrets(environment, values):
                report(
                    f"{_where(r.name, r.resource_type)} puts {variable} of container {container.get('name')!r} in "
                    "plain environment (a secret-looking name or a generated credential's value). Fix: store it in "
                    "Secrets Manager and pass it in the container's secrets (valueFrom).",
                    r.urn,
                )


# -- scaling ---------------------------------------------------------------------------------------


def _adjustments(props: dict[str, Any]) -> list[int]:
    steps = (props.get("stepScalingPolicyConfiguration") or {}).get("stepAdjustments") or []
    return [int(s.get("scalingAdjustment", 0)) for s in steps]


def _nonzero_steps(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != SCALING_POLICY or args.props.get("policyType") != "StepScaling":
        return
    adjustments = _adjustments(args.props)
    if not adjustments or 0 in adjustments:
        report(
            f"{_where(args.name, args.resource_type)} has step adjustments {adjustments}: a 0 never changes "
            "anything. Fix: use +1 (or more) to scale out and -1 to scale in."
        )


def _alarms_react_in_time(args: StackValidationArgs, report: ReportViolation) -> None:
    scale_out_arns = {
        r.props.get("arn")
        for r in args.resources
        if r.resource_type == SCALING_POLICY and any(a > 0 for a in _adjustments(r.props))
    }
    for r in args.resources:
        if r.resource_type != ALARM:
            continue
        actions = r.props.get("alarmActions") or []
        scales_out = any(a in scale_out_arns for a in actions) or (
            any(":scalingPolicy:" in str(a) for a in actions)
            and str(r.props.get("comparisonOperator", "")).startswith("GreaterThan")
        )
        if not scales_out:
            continue
        seconds = rules.alarm_seconds(
            r.props.get("period") or 0, r.props.get("evaluationPeriods") or 0, r.props.get("datapointsToAlarm")
        )
        if seconds > MAX_SCALE_OUT_ALARM_SECONDS:
            report(
                f"{_where(r.name, r.resource_type)} needs {seconds} s of breaching data before it scales out "
                f"(more than {MAX_SCALE_OUT_ALARM_SECONDS} s). Fix: period 60 with 2-3 evaluation periods.",
                r.urn,
            )


# -- alarms that page ------------------------------------------------------------------------------


def _scales(action: Any, scaling_policy_arns: set[Any]) -> bool:
    return action in scaling_policy_arns or ":scalingPolicy:" in str(action)


def _alarms_notify(args: StackValidationArgs, report: ReportViolation) -> None:
    """An alarm either drives a scaling policy or tells someone: one with neither fires into the void."""
    scaling = {r.props.get("arn") for r in args.resources if r.resource_type == SCALING_POLICY}
    for r in args.resources:
        if r.resource_type != ALARM or rules.notifies(r.props):
            continue
        if any(_scales(a, scaling) for a in r.props.get("alarmActions") or []):
            continue
        report(
            f"{_where(r.name, r.resource_type)} notifies no SNS topic when it fires (actions: "
            f"{r.props.get('alarmActions') or 'none'}). Fix: add the alarm topic to alarmActions (seaport's "
            "Monitoring topic_arn).",
            r.urn,
        )


def _alarms_cover(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every ECS service that runs tasks and every internet-facing load balancer is watched by an alarm that
    pages (dimensions ServiceName with its cluster's ClusterName, or LoadBalancer)."""
    paging = [r.props for r in args.resources if r.resource_type == ALARM and rules.notifies(r.props)]
    watched = [dimensions for alarm in paging for _, _, dimensions in rules.watched_metrics(alarm)]
    services = {(d.get("ClusterName"), d["ServiceName"]) for d in watched if d.get("ServiceName")}
    balancers = {d["LoadBalancer"] for d in watched if d.get("LoadBalancer")}
    for r in args.resources:
        name = r.props.get("name")
        cluster = str(r.props.get("cluster") or "").rsplit("/", 1)[-1]
        unwatched_service = (
            r.resource_type == ECS_SERVICE
            and r.props.get("desiredCount") != 0  # a service scaled to nothing has nothing to watch
            and not {(cluster, name), (None, name)} & services
        )
        if unwatched_service:
            report(
                f"{_where(r.name, r.resource_type)} (service {name!r}) is watched by no alarm that pages. Fix: watch "
                "it, e.g. running tasks below its desired count (seaport's Monitoring web_services or services).",
                r.urn,
            )
        internet_facing = r.resource_type == LOAD_BALANCER and not r.props.get("internal", False)
        if internet_facing and r.props.get("arnSuffix") not in balancers:
            report(
                f"{_where(r.name, r.resource_type)} faces the internet and no alarm that pages watches it. Fix: alarm "
                "on its 5xx share and unhealthy targets (seaport's Monitoring web_services).",
                r.urn,
            )


def _scan_on_push(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "aws:ecr/repository:Repository":
        return
    if not (args.props.get("imageScanningConfiguration") or {}).get("scanOnPush"):
        report(
            f"{_where(args.name, args.resource_type)} does not scan images. "
            "Fix: set imageScanningConfiguration.scanOnPush to true."
        )


# -- issue 13: secrets, containers, the edge, the network ---------------------------------------------


def _generated_secrets_secret(args: ResourceValidationArgs, report: ReportViolation) -> None:
    outputs = GENERATED_SECRETS.get(args.resource_type)
    if not outputs:
        return
    secret = set(PROVIDER_SECRET_OUTPUTS.get(args.resource_type, ())) | set(args.opts.additional_secret_outputs or [])
    clear = [o for o in outputs if o not in secret]
    if clear:
        report(
            f"{_where(args.name, args.resource_type)} generates a credential whose {', '.join(clear)} the state keeps "
            f"in clear. Fix: pass opts additional_secret_outputs={clear!r}, or generate it with RandomBytes or "
            "RandomPassword (secret by the provider)."
        )


def _sidecars_read_only(args: ResourceValidationArgs, report: ReportViolation) -> None:
    # The first container is the task's own; the rest help it (registrars hold tokens that write the catalog).
    for container in _container_definitions(args)[1:]:
        if not container.get("readonlyRootFilesystem"):
            report(
                f"{_where(args.name, args.resource_type)} runs sidecar {container.get('name')!r} on a writable root "
                "filesystem. Fix: set readonlyRootFilesystem to true (and a tmpfs where it must write)."
            )


def _stack_of(urn: str) -> str:
    """The stack name of a URN (``urn:pulumi:<stack>::<project>::...``)."""
    prefix = "urn:pulumi:"
    return urn[len(prefix) :].split("::", 1)[0] if urn.startswith(prefix) else ""


def _access_logs_in_prod(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != LOAD_BALANCER or args.props.get("internal", False):
        return
    if not _stack_of(args.urn).startswith("prod"):
        return
    if not (args.props.get("accessLogs") or {}).get("enabled"):
        report(
            f"{_where(args.name, args.resource_type)} faces the internet in a production stack without access logs. "
            "Fix: enable accessLogs to an S3 bucket (seaport's load_balancer access_logs, seaport:accessLogs)."
        )


def _flow_logs(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every VPC the stack creates has a flow log (the VPC's id unknown in a preview: nothing to compare)."""
    logged = {r.props.get("vpcId") for r in args.resources if r.resource_type == FLOW_LOG}
    for r in args.resources:
        vpc_id = r.props.get("id")
        if r.resource_type == VPC and vpc_id and vpc_id not in logged:
            report(
                f"{_where(r.name, r.resource_type)} records no flow logs. Fix: add a flow log of its traffic "
                "(seaport's Network flow_logs, seaport:flowLogs).",
                r.urn,
            )


MANDATORY = EnforcementLevel.MANDATORY

RESOURCE_POLICIES = [
    ResourceValidationPolicy("no-ssh", "No security group rule admits port 22, from anywhere.", _no_ssh, MANDATORY),
    ResourceValidationPolicy("imdsv2-required", "Launch templates and instances require IMDSv2.", _imdsv2, MANDATORY),
    ResourceValidationPolicy("encrypted-volumes", "EBS and root volumes are encrypted.", _encrypted_volumes, MANDATORY),
    ResourceValidationPolicy("log-retention", "Log groups expire their logs.", _log_retention, MANDATORY),
    ResourceValidationPolicy(
        "ecs-circuit-breaker",
        "ECS replica services roll back failed deployments (a DAEMON's breaker never trips).",
        _circuit_breaker,
        MANDATORY,
    ),
    ResourceValidationPolicy(
        "images-by-digest", "Task definitions reference images by digest.", _images_by_digest, MANDATORY
    ),
    ResourceValidationPolicy(
        "nonzero-step-adjustments", "Step scaling adjustments change the capacity.", _nonzero_steps, MANDATORY
    ),
    ResourceValidationPolicy("ecr-scan-on-push", "ECR repositories scan on push.", _scan_on_push, MANDATORY),
    ResourceValidationPolicy(
        "generated-secrets-secret",
        "Generated credentials are secret in the state (the provider's marking or additional_secret_outputs).",
        _generated_secrets_secret,
        MANDATORY,
    ),
    ResourceValidationPolicy(
        "sidecars-read-only", "Sidecar containers have read-only root filesystems.", _sidecars_read_only, MANDATORY
    ),
    ResourceValidationPolicy(
        "internet-facing-alb-access-logs-in-prod",
        "Internet-facing load balancers of production stacks write access logs.",
        _access_logs_in_prod,
        MANDATORY,
    ),
]
STACK_POLICIES = [
    StackValidationPolicy(
        "no-plaintext-secrets",
        "No secret-looking name and no generated credential in container environment.",
        _no_plaintext_secrets,
        MANDATORY,
    ),
    StackValidationPolicy(
        "world-ingress-only-on-alb-listeners",
        "Only internet-facing load balancers' listener ports admit 0.0.0.0/0 or ::/0.",
        _world_ingress_only_on_alb_listeners,
        MANDATORY,
    ),
    StackValidationPolicy(
        "scale-out-alarms-within-5-minutes",
        "Alarms that scale out fire within 5 minutes of sustained load.",
        _alarms_react_in_time,
        MANDATORY,
    ),
    StackValidationPolicy(
        "alarms-notify-a-topic",
        "Every alarm that does not drive scaling notifies an SNS topic.",
        _alarms_notify,
        MANDATORY,
    ),
    StackValidationPolicy(
        "alarms-cover-services-and-load-balancers",
        "Every ECS service that runs tasks and every internet-facing load balancer is watched by an alarm that pages.",
        _alarms_cover,
        MANDATORY,
    ),
    StackValidationPolicy("vpc-flow-logs", "Every VPC the stack creates records flow logs.", _flow_logs, MANDATORY),
]
POLICIES = RESOURCE_POLICIES + STACK_POLICIES
