"""Network: new VPC (public only, public + private with NAT) and adopt mode."""

import ipaddress

import pytest
from seaport import InvalidArgument, Network
from seaport.tools.testing import run

PUBLIC = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
PRIVATE = ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"]


def plan_of(**args):
    return run(lambda: Network("net", args))


def route_targets(plan, table):
    return [(r["cidrBlock"], r.get("gatewayId") or r.get("natGatewayId")) for r in table["inputs"]["routes"]]


def test_public_only_network_spans_distinct_azs_with_carved_cidrs():
    plan = plan_of(cidr_block="10.1.0.0/16", az_count=3)
    vpc = plan.one("aws:ec2/vpc:Vpc")
    assert vpc["inputs"]["cidrBlock"] == "10.1.0.0/16"
    assert vpc["inputs"]["enableDnsHostnames"] and vpc["inputs"]["enableDnsSupport"]
    subnets = plan.of_type("aws:ec2/subnet:Subnet")
    assert [s["inputs"]["cidrBlock"] for s in subnets] == ["10.1.0.0/24", "10.1.1.0/24", "10.1.2.0/24"]
    assert len({s["inputs"]["availabilityZone"] for s in subnets}) == 3
    assert all(s["inputs"]["vpcId"] == vpc["outputs"]["id"] for s in subnets)
    assert not any(s["inputs"]["mapPublicIpOnLaunch"] for s in subnets)
    assert not plan.of_type("aws:ec2/natGateway:NatGateway")
    assert not plan.of_type("aws:ec2/eip:Eip")


def test_public_subnets_route_to_the_internet_gateway():
    plan = plan_of(az_count=2)
    gateway = plan.one("aws:ec2/internetGateway:InternetGateway")
    table = plan.one("aws:ec2/routeTable:RouteTable")
    assert route_targets(plan, table) == [("0.0.0.0/0", gateway["outputs"]["id"])]
    associations = plan.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    subnet_ids = {s["outputs"]["id"] for s in plan.of_type("aws:ec2/subnet:Subnet")}
    assert {a["inputs"]["subnetId"] for a in associations} == subnet_ids
    assert {a["inputs"]["routeTableId"] for a in associations} == {table["outputs"]["id"]}


def test_default_security_group_is_emptied():
    plan = plan_of()
    default = plan.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert not default["inputs"].get("ingress") and not default["inputs"].get("egress")


def test_private_subnets_get_one_nat_gateway_per_az():
    plan = plan_of(cidr_block="10.2.0.0/16", az_count=3, private_subnets=True)
    subnets = plan.of_type("aws:ec2/subnet:Subnet")
    public = [s for s in subnets if s["inputs"]["tags"]["seaport:tier"] == "public"]
    private = [s for s in subnets if s["inputs"]["tags"]["seaport:tier"] == "private"]
    assert len(public) == len(private) == 3
    blocks = [ipaddress.ip_network(s["inputs"]["cidrBlock"]) for s in subnets]
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])
    nats = plan.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 3
    public_ids = {s["outputs"]["id"] for s in public}
    assert {n["inputs"]["subnetId"] for n in nats} == public_ids  # NAT lives in the public subnets
    eips = {e["outputs"]["id"] for e in plan.of_type("aws:ec2/eip:Eip")}
    assert {n["inputs"]["allocationId"] for n in nats} == eips
    nat_ids = {n["outputs"]["id"] for n in nats}
    private_tables = [t for t in plan.of_type("aws:ec2/routeTable:RouteTable") if "private" in t["name"]]
    assert {route_targets(plan, t)[0][1] for t in private_tables} == nat_ids
    network = plan.one("seaport:index:Network")
    assert network["outputs"]["instance_subnet_ids"] == [s["outputs"]["id"] for s in private]


def test_single_nat_gateway_is_shared():
    plan = plan_of(az_count=3, private_subnets=True, single_nat_gateway=True)
    nat = plan.one("aws:ec2/natGateway:NatGateway")
    private_tables = [t for t in plan.of_type("aws:ec2/routeTable:RouteTable") if "private" in t["name"]]
    assert len(private_tables) == 3
    assert {route_targets(plan, t)[0][1] for t in private_tables} == {nat["outputs"]["id"]}


def test_instances_use_public_subnets_without_private_ones():
    plan = plan_of()
    network = plan.one("seaport:index:Network")
    assert network["outputs"]["instance_subnet_ids"] == network["outputs"]["public_subnet_ids"]
    assert network["outputs"]["private_subnet_ids"] == []


def test_adopt_mode_creates_nothing_and_passes_ids_on():
    plan = plan_of(
        vpc_id="vpc-0123456789abcdef0", public_subnet_ids=PUBLIC, private_subnet_ids=PRIVATE, private_subnets=True
    )
    assert [r for r in plan.resources if r["custom"]] == []
    outputs = plan.one("seaport:index:Network")["outputs"]
    assert outputs["vpc_id"] == "vpc-0123456789abcdef0"
    assert outputs["public_subnet_ids"] == PUBLIC
    assert outputs["instance_subnet_ids"] == PRIVATE


def test_tags_reach_every_taggable_resource():
    plan = plan_of(private_subnets=True, tags={"team": "platform"})
    taggable = [r for r in plan.resources if r["custom"] and "tags" in r["inputs"]]
    assert len(taggable) >= 10
    assert all(r["inputs"]["tags"]["team"] == "platform" and r["inputs"]["tags"]["Name"] for r in taggable)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"az_count": 1}, "az_count=1 must be between 2 and 6"),
        ({"cidr_block": "10.0.0.0/33"}, "cidr_block='10.0.0.0/33' is not a valid IPv4 CIDR block"),
        ({"cidr_block": "10.0.0.0/24", "az_count": 3}, "subnet_prefix_length=24 gives room for 1 subnets"),
        ({"single_nat_gateway": True}, "single_nat_gateway=True is only used with private_subnets=True"),
        ({"vpc_id": "vpc-1", "public_subnet_ids": PUBLIC}, "vpc_id='vpc-1' is not a VPC id"),
        ({"vpc_id": "vpc-0123456789abcdef0", "public_subnet_ids": PUBLIC[:1]}, "needs at least 2 subnet ids"),
        ({"tags": {"aws:x": "y"}}, "has tag key 'aws:x'"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(args, message):
    seen = {}

    def program():
        try:
            Network("net", args)
        except InvalidArgument as error:
            seen["error"] = str(error)

    plan = run(program)
    assert message in seen["error"]
    assert plan.resources == []
