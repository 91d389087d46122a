"""ScaledWebService: an internet-facing load balancer + a ContainerService + autoscaling."""

from typing import Any, Required, TypedDict

import pulumi

from . import autoscaling, load_balancer, outputs, references, service
from . import validation as check
from .args import Problem, Problems, raise_if, with_defaults
from .autoscaling import AutoscalingOptions, ServiceAutoscaling
from .containers import Container
from .load_balancer import LoadBalancerOptions
from .references import ClusterReference
from .service import ContainerService, ServiceOptions

DEFAULTS: dict[str, Any] = {"service": {}, "load_balancer": {}, "autoscaling": {}, "tags": {}}


class ScaledWebServiceArgs(TypedDict, total=False):
    cluster: Required[pulumi.Input[ClusterReference]]
    """The cluster to run on (``EcsCluster.reference``): its VPC, public subnets and instances. Required."""
    container: Required[Container]
    """The web container; its ``port`` is what the load balancer sends traffic to. Required."""
    service: ServiceOptions
    """Every ContainerService option (sidecars, volumes, task role, discovery, grace period, deployment
    percentages...). ``desired_tasks`` defaults to ``autoscaling.min_tasks`` here. Default ``{}``."""
    load_balancer: LoadBalancerOptions
    """Health check, HTTPS, draining and deletion protection of the load balancer. Default ``{}``."""
    autoscaling: AutoscalingOptions
    """Task count bounds and how to scale on CPU. Default ``{}``."""
    tags: dict[str, str]
    """Tags added to every resource. Default ``{}``."""


class ScaledWebService(pulumi.ComponentResource):
    """A web service behind an internet-facing Application Load Balancer, scaled on CPU.

    The load balancer admits the world on its listener ports only and reaches
    the tasks on their dynamic host ports (several copies share an instance);
    the service is a full ``ContainerService`` registered in the target group
    once the listeners exist; ``ServiceAutoscaling`` keeps the task count
    between ``min_tasks`` and ``max_tasks``.
    """

    load_balancer_arn: pulumi.Output[str]
    """ARN of the load balancer."""
    load_balancer_arn_suffix: pulumi.Output[str]
    """ARN suffix of the load balancer (its CloudWatch dimension)."""
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
        raise_if(problems(args, name))  # before anything is registered
        super().__init__("seaport:index:ScaledWebService", name, None, opts)
        a = with_defaults(args, DEFAULTS)
        scaling = with_defaults(a["autoscaling"], autoscaling.DEFAULTS)
        endpoint = load_balancer.internet_facing(
            name, a["cluster"], a["container"]["port"], a["load_balancer"], a["tags"], self
        )
        web = ContainerService(
            name,
            {
                "desired_tasks": scaling["min_tasks"],
                **a["service"],
                "cluster": a["cluster"],
                "container": a["container"],
                "target_group_arn": endpoint.target_group_arn_once_listened,
                "autoscaled": True,
                "tags": a["tags"],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        scaler = ServiceAutoscaling(
            name,
            {**a["autoscaling"], "cluster": a["cluster"], "service_name": web.service_name, "tags": a["tags"]},
            opts=pulumi.ResourceOptions(parent=self),
        )
        outputs.register(
            self,
            load_balancer_arn=endpoint.balancer.arn,
            load_balancer_arn_suffix=endpoint.balancer.arn_suffix,
            alb_dns_name=endpoint.balancer.dns_name,
            url=endpoint.url,
            target_group_arn=endpoint.target_group.arn,
            alb_security_group_id=endpoint.security_group_id,
            service_name=web.service_name,
            scaling_mode=scaler.scaling_mode,
        )


def problems(args: ScaledWebServiceArgs, name: str = "web") -> list[Problem]:
    """Every bad argument of a ScaledWebService, its service's and scaling's included."""
    a = with_defaults(args, DEFAULTS)
    found = Problems()
    found.require(a, "cluster", "container")
    found.extend_under("cluster", references.problems(a.get("cluster"), ClusterReference))
    found.check("tags", a["tags"], check.tags(a["tags"]))
    container = a.get("container") or {}
    if not container.get("port"):
        found.missing("container.port", "(the load balancer sends traffic to it)")
    scaling = with_defaults(a["autoscaling"], autoscaling.DEFAULTS)
    options = service.resolve({"desired_tasks": scaling["min_tasks"], **a["service"]})
    for p in service.options_problems(options, container, name):
        found.append(p if p.path.startswith("container") else Problem(f"service.{p.path}", p.value, p.message))
    found.extend_under("load_balancer", load_balancer.problems(a["load_balancer"]))
    scaling_problems = autoscaling.options_problems(a["autoscaling"])
    found.extend_under("autoscaling", scaling_problems)
    desired = options["desired_tasks"]
    if (
        not scaling_problems
        and isinstance(desired, int)
        and not scaling["min_tasks"] <= desired <= scaling["max_tasks"]
    ):
        found.check(
            "service.desired_tasks",
            desired,
            f"must be between autoscaling.min_tasks={scaling['min_tasks']} and autoscaling.max_tasks="
            f"{scaling['max_tasks']}",
        )
    return found
