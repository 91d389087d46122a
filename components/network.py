"""Network: a VPC with public (and optionally private + NAT) subnets, or an adopted one."""

from typing import Any, TypedDict

import pulumi
import pulumi_aws as aws

from . import iam, outputs
from . import validation as check
from .args import Problem, Problems, raise_if, with_defaults
from .references import NetworkReference
from .tagging import name_tags

DEFAULTS: dict[str, Any] = {
    "vpc_cidr": "10.0.0.0/16",
    "az_count": 2,
    "subnet_prefix_length": 24,
    "private_subnets": False,
    "single_nat_gateway": False,
    "existing_vpc_id": "",
    "existing_public_subnet_ids": [],
    "existing_private_subnet_ids": [],
    "flow_logs": True,
    "log_retention_days": 30,
    "tags": {},
}


class NetworkArgs(TypedDict, total=False):
    vpc_cidr: str
    """CIDR block of a new VPC (/16 to /28). Default ``"10.0.0.0/16"``; ignored when ``existing_vpc_id`` is set."""
    az_count: int
    """Availability Zones to span (2-6; a load balancer needs two). Default ``2``."""
    subnet_prefix_length: int
    """Prefix length of each subnet carved from ``vpc_cidr``; all subnets must fit. Default ``24``."""
    private_subnets: bool
    """Put instances in private subnets that reach the internet through NAT gateways. Default ``False``."""
    single_nat_gateway: bool
    """With ``private_subnets``: one shared NAT gateway instead of one per AZ (cheaper, not AZ-resilient).
    Default ``False``."""
    existing_vpc_id: str
    """Adopt this VPC (``vpc-...``) instead of creating one. Default ``""`` (create a VPC)."""
    existing_public_subnet_ids: list[str]
    """With ``existing_vpc_id``: its public subnets (at least 2 AZs). Default ``[]``."""
    existing_private_subnet_ids: list[str]
    """With ``existing_vpc_id`` and ``private_subnets``: its private subnets for the instances. Default ``[]``."""
    flow_logs: bool
    """Record the new VPC's traffic (accepted and rejected) in VPC flow logs, to CloudWatch Logs. Default
    ``True``."""
    log_retention_days: int
    """CloudWatch Logs retention of the flow logs, one of the values CloudWatch accepts. Default ``30``."""
    tags: dict[str, str]
    """Tags added to every resource. Default ``{}``."""


class Network(pulumi.ComponentResource):
    """A VPC whose public subnets hold the load balancers and whose instance subnets hold the cluster.

    New mode creates the VPC, an internet gateway, one public subnet per AZ and,
    with ``private_subnets``, one private subnet per AZ routed through NAT.
    Adopt mode (``existing_vpc_id``) creates nothing and passes the given ids
    on, so the rest of the program is the same either way. The VPC's default
    security group is emptied so nothing can use its allow-all rules by accident.
    """

    vpc_id: pulumi.Output[str]
    """The VPC id."""
    public_subnet_ids: pulumi.Output[list[str]]
    """Public subnets, one per AZ (load balancers go here)."""
    private_subnet_ids: pulumi.Output[list[str]]
    """Private subnets, one per AZ (empty without ``private_subnets``)."""
    instance_subnet_ids: pulumi.Output[list[str]]
    """Where instances go: the private subnets when there are any, else the public ones."""
    reference: pulumi.Output[NetworkReference]
    """All of the above in one object: pass it to ``EcsCluster`` as ``network``."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        raise_if(problems(args))  # before anything is registered
        super().__init__("seaport:index:Network", name, None, opts)
        a = with_defaults(args, DEFAULTS)
        private = a["private_subnets"]
        if a["existing_vpc_id"]:
            vpc_id = pulumi.Output.from_input(a["existing_vpc_id"])
            public_ids = pulumi.Output.from_input(list(a["existing_public_subnet_ids"]))
            private_ids = pulumi.Output.from_input(list(a["existing_private_subnet_ids"]) if private else [])
        else:
            vpc_id, public_ids, private_ids = self._create(name, a)
        instance_ids = private_ids if private else public_ids
        outputs.register(
            self,
            vpc_id=vpc_id,
            public_subnet_ids=public_ids,
            private_subnet_ids=private_ids,
            instance_subnet_ids=instance_ids,
            # a dict of outputs; other languages see an object
            reference={
                "vpc_id": vpc_id,
                "public_subnet_ids": public_ids,
                "instance_subnet_ids": instance_ids,
                "instances_need_public_ip": not private,
            },
        )

    def _create(
        self, name: str, a: dict[str, Any]
    ) -> tuple[pulumi.Output[str], pulumi.Output[list[str]], pulumi.Output[list[str]]]:
        """The new VPC's id, its public subnets' ids and its private subnets' ids."""
        tags, az_count, private = a["tags"], a["az_count"], a["private_subnets"]
        blocks = check.carve_subnets(a["vpc_cidr"], a["subnet_prefix_length"], az_count * (2 if private else 1))
        child = pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones_output(
            state="available",
            filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
            opts=pulumi.InvokeOutputOptions(parent=self),
        ).names.apply(lambda names: _first_zones(names, az_count))
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=a["vpc_cidr"],
            enable_dns_support=True,  # Consul cloud auto-join and ECR endpoints resolve names
            enable_dns_hostnames=True,
            tags=name_tags(tags, f"{name}-vpc"),
            opts=child,
        )
        if a["flow_logs"]:
            self._flow_logs(name, vpc.id, a["log_retention_days"], tags)
        # An empty default security group: nothing falls back to its allow-all rules.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=vpc.id, tags=name_tags(tags, f"{name}-default-locked"), opts=child
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=name_tags(tags, f"{name}-igw"), opts=child)
        public = self._subnets(name, "public", vpc.id, blocks[:az_count], zones, tags, gateway_id=gateway.id)
        private_subnets = []
        if private:
            nat_ids = self._nat_gateways(name, public[: 1 if a["single_nat_gateway"] else az_count], gateway, tags)
            private_subnets = self._subnets(name, "private", vpc.id, blocks[az_count:], zones, tags, nat_ids=nat_ids)
        return vpc.id, pulumi.Output.all(*[s.id for s in public]), pulumi.Output.all(*[s.id for s in private_subnets])

    def _flow_logs(self, name: str, vpc_id: pulumi.Output[str], retention_days: int, tags: dict[str, str]) -> None:
        """Every flow of the VPC (accepted and rejected) to a log group, through a role only VPC Flow Logs may
        assume and that may write only that group."""
        child = pulumi.ResourceOptions(parent=self)
        logs = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            retention_in_days=retention_days,
            tags=name_tags(tags, f"{name}-flow-logs"),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs",
            assume_role_policy=iam.assume_role_policy("vpc-flow-logs.amazonaws.com"),
            tags=name_tags(tags, f"{name}-flow-logs"),
            opts=child,
        )
        actions = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.name,
            policy=iam.policy_document([iam.statement(actions, [logs.arn, logs.arn.apply(lambda arn: f"{arn}:*")])]),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=vpc_id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=logs.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=name_tags(tags, f"{name}-flow-logs"),
            opts=child,
        )

    def _subnets(
        self,
        name: str,
        tier: str,
        vpc_id: pulumi.Output[str],
        blocks: list[str],
        zones: pulumi.Output[list[str]],
        tags: dict[str, str],
        *,
        gateway_id: pulumi.Output[str] | None = None,
        nat_ids: list[pulumi.Output[str]] | None = None,
    ) -> list[aws.ec2.Subnet]:
        """One subnet per AZ; public ones share a route table to the internet gateway, private ones route to NAT."""
        child = pulumi.ResourceOptions(parent=self)

        def route_table(route_name: str, route: aws.ec2.RouteTableRouteArgs) -> aws.ec2.RouteTable:
            return aws.ec2.RouteTable(
                route_name, vpc_id=vpc_id, routes=[route], tags=name_tags(tags, route_name), opts=child
            )

        shared = (
            route_table(f"{name}-public", aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway_id))
            if gateway_id
            else None
        )
        subnets = []
        for index, block in enumerate(blocks):
            subnet_name = f"{name}-{tier}-{index}"
            subnet = aws.ec2.Subnet(
                subnet_name,
                vpc_id=vpc_id,
                cidr_block=block,
                availability_zone=zones[index],
                # Instances that need a public address ask for one in their launch template.
                map_public_ip_on_launch=False,
                tags=name_tags(tags, subnet_name, {"seaport:tier": tier}),
                opts=child,
            )
            routes = shared or route_table(
                subnet_name,
                aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat_ids[index % len(nat_ids)]),
            )
            aws.ec2.RouteTableAssociation(subnet_name, subnet_id=subnet.id, route_table_id=routes.id, opts=child)
            subnets.append(subnet)
        return subnets

    def _nat_gateways(
        self, name: str, subnets: list[aws.ec2.Subnet], gateway: aws.ec2.InternetGateway, tags: dict[str, str]
    ) -> list[pulumi.Output[str]]:
        ids = []
        for index, subnet in enumerate(subnets):
            address = aws.ec2.Eip(
                f"{name}-nat-{index}",
                domain="vpc",
                tags=name_tags(tags, f"{name}-nat-{index}"),
                opts=pulumi.ResourceOptions(parent=self),
            )
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{index}",
                allocation_id=address.id,
                subnet_id=subnet.id,
                tags=name_tags(tags, f"{name}-nat-{index}"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
            )
            ids.append(nat.id)
        return ids


def problems(args: NetworkArgs) -> list[Problem]:
    """Every bad argument of a Network."""
    a = with_defaults(args, DEFAULTS)
    found = Problems()
    private = a["private_subnets"]
    found.check("tags", a["tags"], check.tags(a["tags"]))
    found.check("az_count", a["az_count"], check.int_between(a["az_count"], 2, 6))
    found.check("log_retention_days", a["log_retention_days"], check.log_retention(a["log_retention_days"]))
    if a["single_nat_gateway"] and not private:
        found.check("single_nat_gateway", True, "is only used with private_subnets=True")
    if a["existing_vpc_id"]:
        public_ids, private_ids = list(a["existing_public_subnet_ids"]), list(a["existing_private_subnet_ids"])
        found.check("existing_vpc_id", a["existing_vpc_id"], check.vpc_id(a["existing_vpc_id"]))
        found.check("existing_public_subnet_ids", public_ids, check.subnet_ids(public_ids, 2))
        if private:
            found.check("existing_private_subnet_ids", private_ids, check.subnet_ids(private_ids, 1))
        elif private_ids:
            found.check("existing_private_subnet_ids", private_ids, "is only used with private_subnets=True")
        return found
    for key in ("existing_public_subnet_ids", "existing_private_subnet_ids"):
        if a[key]:
            found.check(key, a[key], "is only used with existing_vpc_id (adopt an existing VPC)")
    cidr_problem = check.cidr_block(a["vpc_cidr"])
    found.check("vpc_cidr", a["vpc_cidr"], cidr_problem)
    if not cidr_problem and not check.int_between(a["az_count"], 2, 6):
        needed = a["az_count"] * (2 if private else 1)
        prefix = a["subnet_prefix_length"]
        found.check("subnet_prefix_length", prefix, check.subnets_fit(a["vpc_cidr"], prefix, needed))
    return found


def _first_zones(names: list[str], count: int) -> list[str]:
    if len(names) < count:
        raise pulumi.RunError(
            f"az_count={count}, but this region has only {len(names)} Availability Zones: {', '.join(names)}"
        )
    return names[:count]
