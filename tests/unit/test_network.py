"""Network: new VPC (public only, public + private with NAT), adopt mode, the reference, tags and bad arguments."""

import inspect
import ipaddress
import json

import pulumi_aws as aws
import pytest

from seaport import Network
from seaport.tools.testing import run
from tests.unit.references import PRIVATE_SUBNETS, PUBLIC_SUBNETS, VPC_ID
from tests.unit.refusals import assert_refused, refused_paths

# What a Network creates that AWS can tag, and what it creates that AWS can't.
TAGGABLE = {
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/routeTable:RouteTable",
    "aws:ec2/eip:Eip",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    "aws:ec2/flowLog:FlowLog",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:iam/role:Role",
}
UNTAGGABLE = {"aws:ec2/routeTableAssociation:RouteTableAssociation", "aws:iam/rolePolicy:RolePolicy"}


def plan_of(**args):
    return run(lambda: Network("net", args))


def route_targets(table):
    return [(r["cidrBlock"], r.get("gatewayId") or r.get("natGatewayId")) for r in table["inputs"]["routes"]]


def private_tables(plan):
    return [t for t in plan.of_type("aws:ec2/routeTable:RouteTable") if "private" in t["name"]]


def test_public_only_network_spans_distinct_azs_with_carved_cidrs():
    plan = plan_of(vpc_cidr="10.1.0.0/16", az_count=3)
    vpc = plan.one("aws:ec2/vpc:Vpc")
    assert vpc["inputs"]["cidrBlock"] == "10.1.0.0/16"
    assert vpc["inputs"]["enableDnsHostnames"] and vpc["inputs"]["enableDnsSupport"]
    subnets = plan.of_type("aws:ec2/subnet:Subnet")
    assert sorted(s["inputs"]["cidrBlock"] for s in subnets) == ["10.1.0.0/24", "10.1.1.0/24", "10.1.2.0/24"]
    assert len({s["inputs"]["availabilityZone"] for s in subnets}) == 3
    assert all(s["inputs"]["vpcId"] == vpc["outputs"]["id"] for s in subnets)
    assert not any(s["inputs"]["mapPublicIpOnLaunch"] for s in subnets)
    assert not plan.of_type("aws:ec2/natGateway:NatGateway")
    assert not plan.of_type("aws:ec2/eip:Eip")


def test_defaults_give_two_azs_of_slash_24_in_10_0():
    plan = plan_of()
    assert plan.one("aws:ec2/vpc:Vpc")["inputs"]["cidrBlock"] == "10.0.0.0/16"
    subnets = plan.of_type("aws:ec2/subnet:Subnet")
    assert sorted(s["inputs"]["cidrBlock"] for s in subnets) == ["10.0.0.0/24", "10.0.1.0/24"]


def test_public_subnets_route_to_the_internet_gateway():
    plan = plan_of(az_count=2)
    gateway = plan.one("aws:ec2/internetGateway:InternetGateway")
    table = plan.one("aws:ec2/routeTable:RouteTable")
    assert route_targets(table) == [("0.0.0.0/0", gateway["outputs"]["id"])]
    assert gateway["inputs"]["vpcId"] == plan.one("aws:ec2/vpc:Vpc")["outputs"]["id"]
    associations = plan.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    subnet_ids = {s["outputs"]["id"] for s in plan.of_type("aws:ec2/subnet:Subnet")}
    assert {a["inputs"]["subnetId"] for a in associations} == subnet_ids
    assert {a["inputs"]["routeTableId"] for a in associations} == {table["outputs"]["id"]}


def test_default_security_group_is_emptied():
    plan = plan_of()
    default = plan.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert not default["inputs"].get("ingress") and not default["inputs"].get("egress")
    assert default["inputs"]["vpcId"] == plan.one("aws:ec2/vpc:Vpc")["outputs"]["id"]


def test_private_subnets_get_one_nat_gateway_per_az():
    plan = plan_of(vpc_cidr="10.2.0.0/16", az_count=3, private_subnets=True)
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
    assert {route_targets(t)[0][1] for t in private_tables(plan)} == nat_ids
    network = plan.one("seaport:index:Network")
    private_by_name = sorted(private, key=lambda s: s["name"])
    assert network["outputs"]["instance_subnet_ids"] == [s["outputs"]["id"] for s in private_by_name]
    assert network["outputs"]["private_subnet_ids"] == network["outputs"]["instance_subnet_ids"]


def test_each_private_subnet_routes_through_the_nat_gateway_of_its_own_az():
    plan = plan_of(az_count=3, private_subnets=True)
    subnets = {s["outputs"]["id"]: s for s in plan.of_type("aws:ec2/subnet:Subnet")}
    nats = {n["outputs"]["id"]: n for n in plan.of_type("aws:ec2/natGateway:NatGateway")}
    tables = {t["outputs"]["id"]: t for t in private_tables(plan)}
    for association in plan.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation"):
        subnet = subnets[association["inputs"]["subnetId"]]
        if association["inputs"]["routeTableId"] not in tables:
            continue  # a public subnet
        nat = nats[route_targets(tables[association["inputs"]["routeTableId"]])[0][1]]
        nat_subnet = subnets[nat["inputs"]["subnetId"]]
        assert nat_subnet["inputs"]["availabilityZone"] == subnet["inputs"]["availabilityZone"]


def test_nat_gateways_wait_for_the_internet_gateway():
    plan = plan_of(private_subnets=True)
    gateway = plan.one("aws:ec2/internetGateway:InternetGateway")
    assert all(plan.depends_on(n, gateway) for n in plan.of_type("aws:ec2/natGateway:NatGateway"))


def test_single_nat_gateway_is_shared():
    plan = plan_of(az_count=3, private_subnets=True, single_nat_gateway=True)
    nat = plan.one("aws:ec2/natGateway:NatGateway")
    assert len(private_tables(plan)) == 3
    assert {route_targets(t)[0][1] for t in private_tables(plan)} == {nat["outputs"]["id"]}


def test_instances_use_public_subnets_without_private_ones():
    plan = plan_of()
    network = plan.one("seaport:index:Network")
    assert network["outputs"]["instance_subnet_ids"] == network["outputs"]["public_subnet_ids"]
    assert network["outputs"]["private_subnet_ids"] == []


@pytest.mark.parametrize(("private", "public_ip"), [(False, True), (True, False)])
def test_the_reference_says_where_instances_go_and_whether_they_need_a_public_ip(private, public_ip):
    plan = plan_of(private_subnets=private)
    outputs = plan.one("seaport:index:Network")["outputs"]
    assert outputs["reference"] == {
        "vpc_id": plan.one("aws:ec2/vpc:Vpc")["outputs"]["id"],
        "public_subnet_ids": outputs["public_subnet_ids"],
        "instance_subnet_ids": outputs["private_subnet_ids" if private else "public_subnet_ids"],
        "instances_need_public_ip": public_ip,
    }


def test_adopt_mode_creates_nothing_and_passes_ids_on():
    plan = plan_of(
        existing_vpc_id=VPC_ID,
        existing_public_subnet_ids=PUBLIC_SUBNETS,
        existing_private_subnet_ids=PRIVATE_SUBNETS,
        private_subnets=True,
    )
    assert [r for r in plan.resources if r["custom"]] == []
    outputs = plan.one("seaport:index:Network")["outputs"]
    assert outputs["vpc_id"] == VPC_ID
    assert outputs["public_subnet_ids"] == PUBLIC_SUBNETS
    assert outputs["instance_subnet_ids"] == PRIVATE_SUBNETS
    assert outputs["reference"]["instances_need_public_ip"] is False


def test_flow_logs_record_every_flow_of_a_created_vpc_through_a_role_that_may_only_write_them():
    plan = plan_of(log_retention_days=90)
    flow = plan.one("aws:ec2/flowLog:FlowLog")
    vpc, group, role = (
        plan.one(t) for t in ("aws:ec2/vpc:Vpc", "aws:cloudwatch/logGroup:LogGroup", "aws:iam/role:Role")
    )
    assert flow["inputs"]["vpcId"] == vpc["outputs"]["id"]
    assert flow["inputs"]["trafficType"] == "ALL"  # rejected flows are the ones an investigation needs
    assert (flow["inputs"]["logDestinationType"], flow["inputs"]["logDestination"]) == (
        "cloud-watch-logs",
        group["outputs"]["arn"],
    )
    assert flow["inputs"]["iamRoleArn"] == role["outputs"]["arn"]
    assert group["inputs"]["retentionInDays"] == 90
    trust = json.loads(role["inputs"]["assumeRolePolicy"])
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "vpc-flow-logs.amazonaws.com"}]
    (statement,) = json.loads(plan.one("aws:iam/rolePolicy:RolePolicy")["inputs"]["policy"])["Statement"]
    assert sorted(statement["Resource"]) == sorted([group["outputs"]["arn"], group["outputs"]["arn"] + ":*"])
    assert not any(r == "*" for r in statement["Resource"])


def test_flow_logs_can_be_turned_off_and_are_not_made_for_an_adopted_vpc():
    assert plan_of(flow_logs=False).of_type("aws:ec2/flowLog:FlowLog") == []
    adopted = plan_of(existing_vpc_id=VPC_ID, existing_public_subnet_ids=PUBLIC_SUBNETS)
    assert adopted.of_type("aws:ec2/flowLog:FlowLog") == []


def test_adopt_mode_without_private_subnets_puts_instances_in_the_public_ones():
    plan = plan_of(existing_vpc_id=VPC_ID, existing_public_subnet_ids=PUBLIC_SUBNETS)
    outputs = plan.one("seaport:index:Network")["outputs"]
    assert outputs["instance_subnet_ids"] == PUBLIC_SUBNETS and outputs["private_subnet_ids"] == []
    assert outputs["reference"]["instances_need_public_ip"] is True


def test_tags_reach_every_taggable_resource():
    """Every resource AWS can tag carries the tags and a Name; a type this test doesn't know fails it."""
    plan = plan_of(private_subnets=True, tags={"team": "platform"})
    created = {r["type"] for r in plan.resources if r["custom"]}
    checked = created - UNTAGGABLE
    assert checked == TAGGABLE, "a new resource type: add it to TAGGABLE (and tag it) or to UNTAGGABLE"
    for resource in plan.resources:
        if resource["type"] in checked:
            tags = resource["inputs"].get("tags") or {}
            assert tags.get("team") == "platform" and tags.get("Name"), f"{resource['type']} {resource['name']}"


def test_untaggable_types_are_really_untaggable():
    """The exclusions above are what the AWS provider can't tag, not resources someone forgot to tag."""

    def arguments(token):
        module, kind = token.split(":")[1].split("/")[0], token.split(":")[2]
        return inspect.signature(getattr(getattr(aws, module), f"{kind}Args")).parameters

    assert all("tags" not in arguments(token) for token in UNTAGGABLE)
    assert all("tags" in arguments(token) for token in TAGGABLE)


@pytest.mark.parametrize(
    ("args", "path", "message"),
    [
        ({"az_count": 1}, "az_count", "az_count=1 must be between 2 and 6"),
        ({"vpc_cidr": "10.0.0.0/33"}, "vpc_cidr", "vpc_cidr='10.0.0.0/33' is not a valid IPv4 CIDR block"),
        ({"vpc_cidr": "10.0.0.0/12"}, "vpc_cidr", "must have a prefix length between /16 and /28"),
        ({"vpc_cidr": "10.0.0.0/24", "az_count": 3}, "subnet_prefix_length", "=24 gives room for 1 subnets"),
        ({"single_nat_gateway": True}, "single_nat_gateway", "is only used with private_subnets=True"),
        (
            {"existing_vpc_id": "vpc-1", "existing_public_subnet_ids": PUBLIC_SUBNETS},
            "existing_vpc_id",
            "existing_vpc_id='vpc-1' is not a VPC id",
        ),
        (
            {"existing_vpc_id": VPC_ID, "existing_public_subnet_ids": PUBLIC_SUBNETS[:1]},
            "existing_public_subnet_ids",
            "needs at least 2 subnet ids",
        ),
        (
            {"existing_vpc_id": VPC_ID, "existing_public_subnet_ids": PUBLIC_SUBNETS, "private_subnets": True},
            "existing_private_subnet_ids",
            "needs at least 1 subnet ids",
        ),
        ({"existing_public_subnet_ids": PUBLIC_SUBNETS}, "existing_public_subnet_ids", "only used with existing_vpc"),
        ({"tags": {"aws:x": "y"}}, "tags", "has tag key 'aws:x'"),
        ({"log_retention_days": 10}, "log_retention_days", "log_retention_days=10 must be one of 1, 3, 5"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(args, path, message):
    assert_refused(lambda: Network("net", args), path, message)


def test_every_bad_argument_is_reported_at_once():
    args = {"az_count": 1, "vpc_cidr": "10.0.0.0/33", "single_nat_gateway": True, "tags": {"aws:x": "y"}}
    assert refused_paths(lambda: Network("net", args)) == ["az_count", "single_nat_gateway", "tags", "vpc_cidr"]
