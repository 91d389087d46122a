"""Network: a VPC with public (and optionally private + NAT) subnets, or an adopted one."""

from typing import TypedDict

import pulumi
import pulumi_aws as aws

from . import validation as check
from .tagging import name_tags


class NetworkArgs(TypedDict, total=False):
    cidr_block: str
    """CIDR block of a new VPC. Default ``10.0.0.0/16``; ignored when ``vpc_id`` is given."""
    az_count: int
    """Availability Zones to span (2-6; an ALB needs two). Default ``2``."""
    subnet_prefix_length: int
    """Prefix length of each subnet carved from ``cidr_block``. Default ``24``."""
    private_subnets: bool
    """Also create private subnets with NAT gateways for the instances. Default ``False``."""
    single_nat_gateway: bool
    """With ``private_subnets``, share one NAT gateway instead of one per AZ. Default ``False``."""
    vpc_id: str
    """Adopt this existing VPC instead of creating one. Default: create a VPC."""
    public_subnet_ids: list[str]
    """With ``vpc_id``: its public subnets (at least 2 AZs). Default ``[]``."""
    private_subnet_ids: list[str]
    """With ``vpc_id`` and ``private_subnets``: its private subnets. Default ``[]``."""
    tags: dict[str, str]
    """Tags added to every resource. Default ``{}``."""


class Network(pulumi.ComponentResource):
    """A VPC whose public subnets hold the load balancer and whose instance subnets hold the cluster.

    New mode creates the VPC, an internet gateway, one public subnet per AZ and,
    with ``private_subnets``, one private subnet per AZ routed through NAT.
    Adopt mode (``vpc_id``) creates nothing and passes the given ids on, so the
    rest of the program is the same either way. The VPC's default security
    group is emptied so nothing can use its allow-all rules by accident.
    """

    vpc_id: pulumi.Output[str]
    """The VPC id."""
    public_subnet_ids: pulumi.Output[list[str]]
    """Public subnets, one per AZ (the load balancer goes here)."""
    private_subnet_ids: pulumi.Output[list[str]]
    """Private subnets, one per AZ (empty without ``private_subnets``)."""
    instance_subnet_ids: pulumi.Output[list[str]]
    """Where container instances go: the private subnets when there are any, else the public ones."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        validate_network_args(args)  # before anything is registered
        super().__init__("seaport:index:Network", name, None, opts)
        private = args.get("private_subnets", False)
        if args.get("vpc_id"):
            self.vpc_id = pulumi.Output.from_input(args["vpc_id"])
            self.public_subnet_ids = pulumi.Output.from_input(list(args["public_subnet_ids"]))
            self.private_subnet_ids = pulumi.Output.from_input(
                list(args.get("private_subnet_ids", [])) if private else []
            )
        else:
            self._create(name, args, private, args.get("tags", {}))
        self.instance_subnet_ids = self.private_subnet_ids if private else self.public_subnet_ids
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "public_subnet_ids": self.public_subnet_ids,
                "private_subnet_ids": self.private_subnet_ids,
                "instance_subnet_ids": self.instance_subnet_ids,
            }
        )

    def _create(self, name: str, args: NetworkArgs, private: bool, tags: dict[str, str]) -> None:
        cidr = args.get("cidr_block", "10.0.0.0/16")
        az_count = args.get("az_count", 2)
        prefix = args.get("subnet_prefix_length", 24)
        blocks = check.carve_subnets(cidr, prefix, az_count * (2 if private else 1))
        child = pulumi.ResourceOptions(parent=self)

        zones = aws.get_availability_zones_output(
            state="available",
            filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
            opts=pulumi.InvokeOutputOptions(parent=self),
        ).names.apply(lambda names: _first_zones(names, az_count))

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=cidr,
            enable_dns_support=True,  # Consul cloud auto-join and ECR endpoints resolve names
            enable_dns_hostnames=True,
            tags=name_tags(tags, f"{name}-vpc"),
            opts=child,
        )
        # An empty default security group: nothing falls back to its allow-all rules.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=vpc.id, tags=name_tags(tags, f"{name}-default-locked"), opts=child
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=name_tags(tags, f"{name}-igw"), opts=child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
            tags=name_tags(tags, f"{name}-public"),
            opts=child,
        )
        public = []
        for index in range(az_count):
            subnet = aws.ec2.Subnet(
                f"{name}-public-{index}",
                vpc_id=vpc.id,
                cidr_block=blocks[index],
                availability_zone=zones[index],
                # Instances that need a public address ask for one in their launch template.
                map_public_ip_on_launch=False,
                tags=name_tags(tags, f"{name}-public-{index}", {"seaport:tier": "public"}),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}", subnet_id=subnet.id, route_table_id=public_routes.id, opts=child
            )
            public.append(subnet)

        private_subnets = []
        if private:
            nat_count = 1 if args.get("single_nat_gateway", False) else az_count
            nats = []
            for index in range(nat_count):
                address = aws.ec2.Eip(
                    f"{name}-nat-{index}",
                    domain="vpc",
                    tags=name_tags(tags, f"{name}-nat-{index}"),
                    opts=child,
                )
                nats.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{index}",
                        allocation_id=address.id,
                        subnet_id=public[index].id,
                        tags=name_tags(tags, f"{name}-nat-{index}"),
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
                    )
                )
            for index in range(az_count):
                subnet = aws.ec2.Subnet(
                    f"{name}-private-{index}",
                    vpc_id=vpc.id,
                    cidr_block=blocks[az_count + index],
                    availability_zone=zones[index],
                    map_public_ip_on_launch=False,
                    tags=name_tags(tags, f"{name}-private-{index}", {"seaport:tier": "private"}),
                    opts=child,
                )
                routes = aws.ec2.RouteTable(
                    f"{name}-private-{index}",
                    vpc_id=vpc.id,
                    routes=[
                        aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nats[index % nat_count].id)
                    ],
                    tags=name_tags(tags, f"{name}-private-{index}"),
                    opts=child,
                )
                aws.ec2.RouteTableAssociation(
                    f"{name}-private-{index}", subnet_id=subnet.id, route_table_id=routes.id, opts=child
                )
                private_subnets.append(subnet)

        self.vpc_id = vpc.id
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])


def validate_network_args(args: NetworkArgs) -> None:
    """Raise InvalidArgument naming the first bad argument."""
    private = args.get("private_subnets", False)
    tags = args.get("tags", {})
    check.require(check.tags(tags), "tags", tags)
    if args.get("vpc_id"):
        public_ids = list(args.get("public_subnet_ids", []))
        private_ids = list(args.get("private_subnet_ids", []))
        check.require(check.vpc_id(args["vpc_id"]), "vpc_id", args["vpc_id"])
        check.require(check.subnet_ids(public_ids, 2), "public_subnet_ids", public_ids)
        if private:
            check.require(check.subnet_ids(private_ids, 1), "private_subnet_ids", private_ids)
        return
    cidr = args.get("cidr_block", "10.0.0.0/16")
    az_count = args.get("az_count", 2)
    prefix = args.get("subnet_prefix_length", 24)
    check.require(check.cidr_block(cidr), "cidr_block", cidr)
    check.require(check.int_between(az_count, 2, 6), "az_count", az_count)
    needed = az_count * (2 if private else 1)
    check.require(check.subnets_fit(cidr, prefix, needed), "subnet_prefix_length", prefix)
    if args.get("single_nat_gateway") and not private:
        raise check.InvalidArgument("single_nat_gateway=True is only used with private_subnets=True")


def _first_zones(names: list[str], count: int) -> list[str]:
    if len(names) < count:
        raise pulumi.RunError(
            f"az_count={count}, but this region has only {len(names)} Availability Zones: {', '.join(names)}"
        )
    return names[:count]
