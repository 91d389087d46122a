"""The internet-facing side of a web service: ALB, its security group, target group and listeners."""

import re
from dataclasses import dataclass
from typing import Any, TypedDict

import pulumi
import pulumi_aws as aws

from . import edge, rules
from . import validation as check
from .args import Problem, Problems, with_defaults
from .references import get, subnet_ids
from .security_groups import admit_range, allow_egress_range, security_group
from .tagging import name_tags

HTTP, HTTPS = 80, 443
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"

DEFAULTS: dict[str, Any] = {
    "health_check_path": "/health",
    "deregistration_delay_seconds": 30,
    "deletion_protection": False,
    "access_logs": True,
    "access_log_retention_days": 90,
    "waf": False,
    "waf_rate_limit": 2000,
    "log_retention_days": 30,
}
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")


class LoadBalancerOptions(TypedDict, total=False):
    health_check_path: str
    """Path the target group checks on each task (expects 200). Default ``"/health"``."""
    deregistration_delay_seconds: int
    """Seconds the load balancer drains a target before deregistering it (0-3600). Default ``30``."""
    domain_name: str
    """Serve HTTPS for this name: a DNS-validated ACM certificate and an alias record in ``hosted_zone_id``; HTTP
    redirects to HTTPS and ``url`` is ``https://<domain_name>/``. Default: none."""
    hosted_zone_id: pulumi.Input[str]
    """The Route 53 public hosted zone of ``domain_name`` (``Z...``). Required with ``domain_name``. Default:
    none."""
    certificate_arn: pulumi.Input[str]
    """Bring your own ACM certificate instead of ``domain_name``: serve HTTPS on 443 and redirect HTTP to it.
    Default: none (HTTP only, unless ``domain_name``)."""
    deletion_protection: bool
    """Refuse to delete the load balancer until this is turned off. Default ``False``."""
    access_logs: bool
    """Write access logs to an S3 bucket made for them (private, encrypted, expiring). Default ``True``."""
    access_log_retention_days: int
    """Days access logs are kept (1-3650). Default ``90``."""
    waf: bool
    """Put a WAF in front (AWS's common rule set and a per-address rate limit). Default ``False``."""
    waf_rate_limit: int
    """With ``waf``: requests one address may send in 5 minutes before it is blocked (10-2000000000). Default
    ``2000``."""
    log_retention_days: int
    """With ``waf``: CloudWatch Logs retention of the WAF's request log, one of the values CloudWatch accepts.
    Default ``30``."""


@dataclass(frozen=True)
class WebEndpoint:
    """What the rest of the web service needs from its load balancer."""

    balancer: aws.lb.LoadBalancer
    target_group: aws.lb.TargetGroup
    listeners: list[aws.lb.Listener]
    security_group_id: pulumi.Output[str]
    secure: bool
    url: pulumi.Output[str]

    @property
    def target_group_arn_once_listened(self) -> pulumi.Output[str]:
        """The target group's ARN, resolved only once every listener exists: ECS registers targets only
        in a target group a listener uses, so a service given this waits for the listeners."""
        return pulumi.Output.all(self.target_group.arn, *[listener.arn for listener in self.listeners]).apply(
            lambda values: values[0]
        )


def internet_facing(
    name: str, cluster: Any, container_port: int, options: LoadBalancerOptions, tags: dict[str, str], parent: Any
) -> WebEndpoint:
    """An internet-facing ALB that reaches the cluster's tasks on their dynamic host ports, and nothing else.

    Its security group admits the world on the listener ports only and may only reach the instances on the
    ephemeral port range where bridge mode publishes containers; the instances admit exactly that range from
    the load balancer's group. With a certificate, HTTP redirects to HTTPS (TLS 1.2+).
    """
    o = with_defaults(options, DEFAULTS)
    child = pulumi.ResourceOptions(parent=parent)
    if o.get("domain_name"):
        o["certificate_arn"] = edge.certificate_for(name, o["domain_name"], o["hosted_zone_id"], tags, parent)
    secure = bool(o.get("certificate_arn"))
    logs = edge.access_log_bucket(name, o["access_log_retention_days"], tags, parent) if o["access_logs"] else None
    vpc_id = get(cluster, "network").apply(lambda n: n["vpc_id"])
    alb_group = _security_group(name, cluster, vpc_id, [HTTP, HTTPS] if secure else [HTTP], tags, child)
    balancer = aws.lb.LoadBalancer(
        f"{name}-alb",
        load_balancer_type="application",
        internal=False,
        security_groups=[alb_group.id],
        subnets=subnet_ids(cluster, "public"),
        drop_invalid_header_fields=True,
        desync_mitigation_mode="defensive",
        enable_deletion_protection=o["deletion_protection"],
        access_logs=aws.lb.LoadBalancerAccessLogsArgs(bucket=logs[0].id, enabled=True) if logs else None,
        tags=name_tags(tags, f"{name}-alb"),
        # ELB checks at creation that it may write to the bucket: the bucket policy comes first.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[logs[1]] if logs else None),
    )
    if o["waf"]:
        edge.web_acl(name, balancer.arn, o["waf_rate_limit"], o["log_retention_days"], tags, parent)
    if o.get("domain_name"):
        edge.alias_record(name, o["domain_name"], o["hosted_zone_id"], balancer, parent)
        url = pulumi.Output.from_input(f"https://{o['domain_name']}/")
    else:
        url = balancer.dns_name.apply(lambda dns: f"{'https' if secure else 'http'}://{dns}/")
    target_group = aws.lb.TargetGroup(
        f"{name}-tg",
        vpc_id=vpc_id,
        target_type="instance",
        protocol="HTTP",
        port=container_port,  # ECS registers each task on its own dynamic host port
        deregistration_delay=o["deregistration_delay_seconds"],
        health_check=aws.lb.TargetGroupHealthCheckArgs(
            path=o["health_check_path"],
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
    listeners = _listeners(name, balancer, target_group, o, tags, child)
    return WebEndpoint(balancer, target_group, listeners, alb_group.id, secure, url)


def _security_group(
    name: str,
    cluster: Any,
    vpc_id: pulumi.Output[str],
    listener_ports: list[int],
    tags: dict[str, str],
    child: pulumi.ResourceOptions,
) -> aws.ec2.SecurityGroup:
    """The load balancer's group: the world on the listener ports in, the tasks' dynamic host ports out; and the
    one rule on the instances' group that lets the load balancer in."""
    instances_group = get(cluster, "instance_security_group_id")
    alb_group = security_group(
        f"{name}-alb", vpc_id, f"load balancer of {name}: the world on the listener ports only", tags, child
    )
    for port in listener_ports:
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-alb-{port}",
            security_group_id=alb_group.id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            cidr_ipv4=rules.WORLD_CIDRS[0],
            description=f"listener port {port}",
            opts=child,
        )
    allow_egress_range(
        f"{name}-alb-to-tasks",
        alb_group.id,
        rules.EPHEMERAL_PORTS,
        instances_group,
        "to the tasks' dynamic host ports",
        child,
    )
    admit_range(
        f"{name}-from-alb",
        instances_group,
        rules.EPHEMERAL_PORTS,
        alb_group.id,
        f"{name} load balancer to the tasks' dynamic host ports",
        child,
    )
    return alb_group


def _listeners(
    name: str,
    balancer: aws.lb.LoadBalancer,
    target_group: aws.lb.TargetGroup,
    o: dict[str, Any],
    tags: dict[str, str],
    child: pulumi.ResourceOptions,
) -> list[aws.lb.Listener]:
    forward = [aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)]

    def listener(
        protocol: str, port: int, actions: list[aws.lb.ListenerDefaultActionArgs], **tls: Any
    ) -> aws.lb.Listener:
        return aws.lb.Listener(
            f"{name}-{protocol.lower()}",
            load_balancer_arn=balancer.arn,
            port=port,
            protocol=protocol,
            default_actions=actions,
            tags=tags,
            opts=child,
            **tls,
        )

    if not o.get("certificate_arn"):
        return [listener("HTTP", HTTP, forward)]
    https = listener("HTTPS", HTTPS, forward, ssl_policy=TLS_POLICY, certificate_arn=o["certificate_arn"])
    redirect = aws.lb.ListenerDefaultActionRedirectArgs(protocol="HTTPS", port=str(HTTPS), status_code="HTTP_301")
    return [https, listener("HTTP", HTTP, [aws.lb.ListenerDefaultActionArgs(type="redirect", redirect=redirect)])]


def problems(options: LoadBalancerOptions) -> list[Problem]:
    o = with_defaults(options, DEFAULTS)
    found = Problems()
    delay = o["deregistration_delay_seconds"]
    found.check("deregistration_delay_seconds", delay, check.int_between(delay, 0, 3600))
    found.check("health_check_path", o["health_check_path"], check.url_path(o["health_check_path"]))
    certificate = o.get("certificate_arn")
    if isinstance(certificate, str):
        found.check("certificate_arn", certificate, check.certificate_arn(certificate))
    domain = o.get("domain_name")
    if domain:
        found.check(
            "domain_name", domain, None if _DOMAIN.match(domain) else "is not a DNS name, e.g. portal.example.com"
        )
        found.require(o, "hosted_zone_id", why="with domain_name (the zone its certificate and alias records go in)")
        if certificate:
            found.check("certificate_arn", certificate, "and domain_name are two ways to the same thing: give one")
    zone = o.get("hosted_zone_id")
    if isinstance(zone, str) and zone and not _ZONE_ID.match(zone):
        found.check("hosted_zone_id", zone, "is not a Route 53 hosted zone id (Z and letters or digits)")
    days = o["access_log_retention_days"]
    found.check("access_log_retention_days", days, check.int_between(days, 1, 3650))
    found.check("log_retention_days", o["log_retention_days"], check.log_retention(o["log_retention_days"]))
    found.check("waf_rate_limit", o["waf_rate_limit"], check.int_between(o["waf_rate_limit"], 10, 2_000_000_000))
    return found
