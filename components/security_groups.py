"""Security groups whose rules are separate resources, so each component adds only the rules it needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pulumi
import pulumi_aws as aws

from .tagging import name_tags

Port = tuple[int, str, str]
"""(port, protocol, purpose), e.g. ``(8301, "udp", "LAN gossip")``."""


def security_group(
    name: str, vpc_id: pulumi.Input[str], description: str, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> aws.ec2.SecurityGroup:
    """A security group with no inline rules and no egress until a rule adds it."""
    return aws.ec2.SecurityGroup(
        name,
        vpc_id=vpc_id,
        description=description,
        revoke_rules_on_delete=True,
        tags=name_tags(tags, name),
        opts=opts,
    )


def outbound_only_security_group(
    name: str, vpc_id: pulumi.Input[str], description: str, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> aws.ec2.SecurityGroup:
    """A security group with no ingress and all egress (AWS APIs, package repositories, peers)."""
    group = security_group(name, vpc_id, description, tags, opts)
    aws.vpc.SecurityGroupEgressRule(
        f"{name}-egress",
        security_group_id=group.id,
        ip_protocol="-1",
        cidr_ipv4="0.0.0.0/0",
        description="outbound: AWS APIs, image and package repositories, peers",
        opts=opts,
    )
    return group


def admit(
    name: str,
    group_id: pulumi.Input[str],
    ports: Iterable[Port],
    sources: Mapping[str, pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
) -> None:
    """Ingress rules on ``group_id``: each port from each named source group, and from nothing else."""
    for port, protocol, purpose in ports:
        for source, source_id in sources.items():
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-{port}-{protocol}-from-{source}",
                security_group_id=group_id,
                referenced_security_group_id=source_id,
                ip_protocol=protocol,
                from_port=port,
                to_port=port,
                description=f"{purpose} from the {source}",
                opts=opts,
            )


def admit_range(
    name: str,
    group_id: pulumi.Input[str],
    port_range: tuple[int, int],
    source_id: pulumi.Input[str],
    description: str,
    opts: pulumi.ResourceOptions,
) -> aws.vpc.SecurityGroupIngressRule:
    """One TCP ingress rule for a port range from one source group."""
    return _range_rule(aws.vpc.SecurityGroupIngressRule, name, group_id, port_range, source_id, description, opts)


def allow_egress_range(
    name: str,
    group_id: pulumi.Input[str],
    port_range: tuple[int, int],
    target_id: pulumi.Input[str],
    description: str,
    opts: pulumi.ResourceOptions,
) -> aws.vpc.SecurityGroupEgressRule:
    """One TCP egress rule for a port range to one target group."""
    return _range_rule(aws.vpc.SecurityGroupEgressRule, name, group_id, port_range, target_id, description, opts)


def _range_rule(rule, name, group_id, port_range, peer_id, description, opts):
    """An ingress or egress rule (``rule``: the resource class) for a TCP port range with one peer group."""
    low, high = port_range
    return rule(
        name,
        security_group_id=group_id,
        referenced_security_group_id=peer_id,
        ip_protocol="tcp",
        from_port=low,
        to_port=high,
        description=description,
        opts=opts,
    )
