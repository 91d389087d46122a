"""ScaledWebService: an internet-facing ALB in front of an autoscaled ContainerService."""

from typing import Required, TypedDict

import pulumi
import pulumi_aws as aws

from . import instances
from . import validation as check
from .service import (
    EPHEMERAL_PORTS,
    Container,
    ContainerService,
    ContainerServiceArgs,
    validate_service_args,
)
from .tagging import name_tags

HTTP, HTTPS = 80, 443
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Step scaling evaluates one-minute CPU averages: out after 2 minutes at or above the
# threshold, in after 15 minutes at or below it (scale in slowly, out quickly).
PERIOD_SECONDS = 60
SCALE_OUT_PERIODS = 2
SCALE_IN_PERIODS = 15


class ScaledWebServiceArgs(TypedDict, total=False):
    vpc_id: Required[pulumi.Input[str]]
    """VPC of the load balancer. Required."""
    public_subnet_ids: Required[pulumi.Input[list[str]]]
    """Public subnets (2+ AZs) for the internet-facing load balancer. Required."""
    cluster_arn: Required[pulumi.Input[str]]
    """ARN of the ECS cluster. Required."""
    cluster_name: Required[pulumi.Input[str]]
    """Name of the ECS cluster (CloudWatch dimensions and the scalable target). Required."""
    capacity_provider_name: Required[pulumi.Input[str]]
    """Capacity provider the service runs on. Required."""
    instance_security_group_id: Required[pulumi.Input[str]]
    """Security group of the container instances; it gets the one ingress rule from the ALB. Required."""
    container: Required[Container]
    """The web container; ``port`` is what the ALB sends traffic to. Required."""
    sidecars: list[Container]
    """Extra containers in each task. Default ``[]``."""
    health_check_path: str
    """Path the target group checks (expects 200). Default ``/health``."""
    deregistration_delay_seconds: int
    """Seconds the ALB drains a target before deregistering it. Default ``30``."""
    certificate_arn: pulumi.Input[str]
    """ACM certificate: serve HTTPS on 443 and redirect HTTP to it. Default: HTTP only."""
    desired_count: int
    """Tasks at the first deployment. Default ``2``."""
    min_count: int
    """Fewest tasks autoscaling keeps. Default ``1``."""
    max_count: int
    """Most tasks autoscaling may run. Default ``3``."""
    scaling_mode: str
    """``target-tracking`` (AWS-managed alarms) or ``step`` (two CPU alarms, step policies). Default: the former."""
    scale_out_cpu_percent: int
    """Step scaling: add a task when average CPU >= this for 2 minutes. Default ``75``."""
    scale_in_cpu_percent: int
    """Step scaling: remove a task when average CPU <= this for 15 minutes. Default ``25``."""
    target_cpu_percent: int
    """Target tracking: the average CPU to hold. Default ``60``."""
    scale_out_cooldown_seconds: int
    """Seconds after a scale-out before the next scaling activity. Default ``60``."""
    scale_in_cooldown_seconds: int
    """Seconds after a scale-in before the next scale-in. Default ``120``."""
    deletion_protection: bool
    """Protect the load balancer from deletion. Default ``False``."""
    stop_timeout_seconds: int
    """Seconds between SIGTERM and SIGKILL. Default ``30``."""
    log_retention_days: int
    """CloudWatch Logs retention. Default ``30``."""
    tags: dict[str, str]
    """Tags added to every resource. Default ``{}``."""


class ScaledWebService(pulumi.ComponentResource):
    """A web service behind an internet-facing Application Load Balancer, scaled on CPU.

    The ALB's security group admits the world on the listener ports only and
    may only reach the instances on the ephemeral port range where bridge mode
    publishes containers; the instances admit exactly that range from the ALB's
    group. The target group registers instances on each task's dynamic host
    port, so several copies share an instance. With a certificate, HTTP
    redirects to HTTPS (TLS 1.2+). Application Auto Scaling keeps the task
    count between ``min_count`` and ``max_count``, by target tracking or by
    step scaling with two CloudWatch CPU alarms (+1 task / -1 task).
    """

    load_balancer_arn: pulumi.Output[str]
    """ARN of the load balancer."""
    alb_dns_name: pulumi.Output[str]
    """DNS name of the load balancer."""
    url: pulumi.Output[str]
    """``http(s)://<dns name>/`` of the service."""
    target_group_arn: pulumi.Output[str]
    """ARN of the target group."""
    alb_security_group_id: pulumi.Output[str]
    """Security group of the load balancer."""
    service_name: pulumi.Output[str]
    """Name of the ECS service."""
    scaling_mode: pulumi.Output[str]
    """``step`` or ``target-tracking``."""

    def __init__(self, name: str, args: ScaledWebServiceArgs, opts: pulumi.ResourceOptions | None = None):
        validate_web_args(name, args)  # before anything is registered
        super().__init__("seaport:index:ScaledWebService", name, None, opts)
        tags = args.get("tags", {})
        child = pulumi.ResourceOptions(parent=self)
        secure = bool(args.get("certificate_arn"))
        listener_ports = [HTTP, HTTPS] if secure else [HTTP]
        container = args["container"]

        alb_group = instances.security_group(
            f"{name}-alb", args["vpc_id"], f"load balancer of {name}: the world on the listener ports only", tags, child
        )
        for port in listener_ports:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-{port}",
                security_group_id=alb_group.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4="0.0.0.0/0",
                description=f"listener port {port}",
                opts=child,
            )
        low, high = EPHEMERAL_PORTS
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-to-tasks",
            security_group_id=alb_group.id,
            ip_protocol="tcp",
            from_port=low,
            to_port=high,
            referenced_security_group_id=args["instance_security_group_id"],
            description="to the tasks' dynamic host ports",
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-from-alb",
            security_group_id=args["instance_security_group_id"],
            ip_protocol="tcp",
            from_port=low,
            to_port=high,
            referenced_security_group_id=alb_group.id,
            description=f"{name} load balancer to the tasks' dynamic host ports",
            opts=child,
        )

        balancer = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            security_groups=[alb_group.id],
            subnets=args["public_subnet_ids"],
            drop_invalid_header_fields=True,
            desync_mitigation_mode="defensive",
            enable_deletion_protection=args.get("deletion_protection", False),
            tags=name_tags(tags, f"{name}-alb"),
            opts=child,
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-tg",
            vpc_id=args["vpc_id"],
            target_type="instance",
            protocol="HTTP",
            port=container["port"],  # ECS registers each task on its own dynamic host port
            deregistration_delay=args.get("deregistration_delay_seconds", 30),
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                path=args.get("health_check_path", "/health"),
                protocol="HTTP",
                port="traffic-port",
                matcher="200",
                interval=15,
                timeout=5,
                healthy_threshold=2,
                unhealthy_threshold=3,
            ),
            tags=name_tags(tags, f"{name}-tg"),
            opts=child,
        )
        forward = [aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)]
        if secure:
            aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=balancer.arn,
                port=HTTPS,
                protocol="HTTPS",
                ssl_policy=TLS_POLICY,
                certificate_arn=args["certificate_arn"],
                default_actions=forward,
                tags=tags,
                opts=child,
            )
        aws.lb.Listener(
            f"{name}-http",
            load_balancer_arn=balancer.arn,
            port=HTTP,
            protocol="HTTP",
            default_actions=[
                aws.lb.ListenerDefaultActionArgs(
                    type="redirect",
                    redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                        protocol="HTTPS", port=str(HTTPS), status_code="HTTP_301"
                    ),
                )
            ]
            if secure
            else forward,
            tags=tags,
            opts=child,
        )

        service_args: ContainerServiceArgs = {
            "cluster_arn": args["cluster_arn"],
            "capacity_provider_name": args["capacity_provider_name"],
            "container": container,
            "sidecars": args.get("sidecars", []),
            "desired_count": args.get("desired_count", 2),
            "autoscaled": True,
            "load_balancer": {"target_group_arn": target_group.arn},
            "stop_timeout_seconds": args.get("stop_timeout_seconds", 30),
            "log_retention_days": args.get("log_retention_days", 30),
            "tags": tags,
        }
        # Listeners must exist before ECS can register targets behind them.
        service = ContainerService(name, service_args, opts=pulumi.ResourceOptions(parent=self, depends_on=[balancer]))

        mode = args.get("scaling_mode", "target-tracking")
        self._autoscaling(name, args, mode, service.service_name, child)

        self.load_balancer_arn = balancer.arn
        self.alb_dns_name = balancer.dns_name
        self.url = balancer.dns_name.apply(lambda dns: f"{'https' if secure else 'http'}://{dns}/")
        self.target_group_arn = target_group.arn
        self.alb_security_group_id = alb_group.id
        self.service_name = service.service_name
        self.scaling_mode = pulumi.Output.from_input(mode)
        self.register_outputs(
            {
                "load_balancer_arn": self.load_balancer_arn,
                "alb_dns_name": self.alb_dns_name,
                "url": self.url,
                "target_group_arn": self.target_group_arn,
                "alb_security_group_id": self.alb_security_group_id,
                "service_name": self.service_name,
                "scaling_mode": self.scaling_mode,
            }
        )

    def _autoscaling(
        self,
        name: str,
        args: ScaledWebServiceArgs,
        mode: str,
        service_name: pulumi.Output[str],
        child: pulumi.ResourceOptions,
    ) -> None:
        resource_id = pulumi.Output.concat("service/", args["cluster_name"], "/", service_name)
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=resource_id,
            min_capacity=args.get("min_count", 1),
            max_capacity=args.get("max_count", 3),
            tags=args.get("tags", {}),
            opts=child,
        )
        out_cooldown = args.get("scale_out_cooldown_seconds", 60)
        in_cooldown = args.get("scale_in_cooldown_seconds", 120)
        if mode == "target-tracking":
            aws.appautoscaling.Policy(
                f"{name}-cpu-target",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                    predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                        predefined_metric_type="ECSServiceAverageCPUUtilization"
                    ),
                    target_value=args.get("target_cpu_percent", 60),
                    scale_out_cooldown=out_cooldown,
                    scale_in_cooldown=in_cooldown,
                ),
                opts=child,
            )
            return
        # Step scaling, the original design with its defects fixed: the adjustments are +1/-1
        # (they were 0, so nothing ever changed) and the alarms fire within minutes (they needed 60).
        dimensions = {"ClusterName": args["cluster_name"], "ServiceName": service_name}
        for direction, adjustment, cooldown, bound, threshold, operator, periods in (
            (
                "out",
                1,
                out_cooldown,
                "lower",
                args.get("scale_out_cpu_percent", 75),
                "GreaterThanOrEqualToThreshold",
                SCALE_OUT_PERIODS,
            ),
            (
                "in",
                -1,
                in_cooldown,
                "upper",
                args.get("scale_in_cpu_percent", 25),
                "LessThanOrEqualToThreshold",
                SCALE_IN_PERIODS,
            ),
        ):
            step = aws.appautoscaling.PolicyStepScalingPolicyConfigurationStepAdjustmentArgs(
                scaling_adjustment=adjustment,
                # Offsets from the alarm threshold: scale out anywhere at/above it, in anywhere at/below it.
                metric_interval_lower_bound="0" if bound == "lower" else None,
                metric_interval_upper_bound="0" if bound == "upper" else None,
            )
            policy = aws.appautoscaling.Policy(
                f"{name}-scale-{direction}",
                policy_type="StepScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                step_scaling_policy_configuration=aws.appautoscaling.PolicyStepScalingPolicyConfigurationArgs(
                    adjustment_type="ChangeInCapacity",
                    cooldown=cooldown,
                    metric_aggregation_type="Average",
                    step_adjustments=[step],
                ),
                opts=child,
            )
            aws.cloudwatch.MetricAlarm(
                f"{name}-cpu-{'high' if direction == 'out' else 'low'}",
                alarm_description=f"scale {name} {direction}: average CPU "
                f"{'>=' if direction == 'out' else '<='} {threshold}% for {periods} minute(s)",
                namespace="AWS/ECS",
                metric_name="CPUUtilization",
                statistic="Average",
                unit="Percent",
                dimensions=dimensions,
                period=PERIOD_SECONDS,
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                threshold=threshold,
                comparison_operator=operator,
                treat_missing_data="missing",
                alarm_actions=[policy.arn],
                tags=args.get("tags", {}),
                opts=child,
            )


def validate_web_args(name: str, args: ScaledWebServiceArgs) -> None:
    """Raise InvalidArgument naming the first bad argument, the service's own included."""
    for key in (
        "vpc_id",
        "public_subnet_ids",
        "cluster_arn",
        "cluster_name",
        "capacity_provider_name",
        "instance_security_group_id",
    ):
        if args.get(key) is None:
            raise check.InvalidArgument(f"{key} is required")
    container = args.get("container") or {}
    if not container.get("port"):
        raise check.InvalidArgument("container.port is required: the load balancer sends traffic to it")
    low, desired, high = args.get("min_count", 1), args.get("desired_count", 2), args.get("max_count", 3)
    check.require(check.int_between(low, 1, 1000), "min_count", low)
    check.require(check.int_between(high, 1, 1000), "max_count", high)
    if not low <= desired <= high:
        raise check.InvalidArgument(f"desired_count={desired} must be between min_count={low} and max_count={high}")
    mode = args.get("scaling_mode", "target-tracking")
    check.require(check.one_of(mode, check.SCALING_MODES), "scaling_mode", mode)
    scale_in, scale_out = args.get("scale_in_cpu_percent", 25), args.get("scale_out_cpu_percent", 75)
    if not 0 < scale_in < scale_out <= 100:
        raise check.InvalidArgument(
            f"scale_in_cpu_percent={scale_in} and scale_out_cpu_percent={scale_out} must satisfy 0 < in < out <= 100"
        )
    target = args.get("target_cpu_percent", 60)
    check.require(check.int_between(target, 10, 90), "target_cpu_percent", target)
    for key, default in (("scale_out_cooldown_seconds", 60), ("scale_in_cooldown_seconds", 120)):
        check.require(check.int_between(args.get(key, default), 0, 3600), key, args.get(key, default))
    delay = args.get("deregistration_delay_seconds", 30)
    check.require(check.int_between(delay, 0, 3600), "deregistration_delay_seconds", delay)
    path = args.get("health_check_path", "/health")
    check.require(check.url_path(path), "health_check_path", path)
    certificate = args.get("certificate_arn")
    if isinstance(certificate, str):
        check.require(check.certificate_arn(certificate), "certificate_arn", certificate)
    shared = ("container", "sidecars", "stop_timeout_seconds", "log_retention_days", "tags")
    validate_service_args(name, {"cluster_arn": args["cluster_arn"], **{k: args[k] for k in shared if k in args}})
