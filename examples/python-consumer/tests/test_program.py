"""The example's own offline tests: its program under seaport's mocks (seaport.tools.testing)."""

import json
from pathlib import Path

import pytest

from seaport.tools.testing import run_program

MAIN = Path(__file__).resolve().parents[1] / "__main__.py"


@pytest.fixture(scope="module")
def plan():
    return run_program(MAIN, stack="dev", config={"aws:region": "eu-west-1"}, project="seaport-python-consumer")


def test_builds_network_cluster_and_web_service(plan):
    kinds = {r["type"] for r in plan.resources if not r["custom"]}
    assert {"seaport:index:Network", "seaport:index:EcsCluster", "seaport:index:ScaledWebService"} <= kinds
    assert plan.outputs["url"].startswith("http://")


def test_the_cluster_reference_wires_the_service_to_the_network(plan):
    """Nothing copied by hand: the load balancer sits in the network's public subnets, the service on the
    cluster's capacity provider, the ingress rule on the cluster's instance group."""
    public = [s["outputs"]["id"] for s in plan.of_type("aws:ec2/subnet:Subnet")]
    assert plan.one("aws:lb/loadBalancer:LoadBalancer")["inputs"]["subnets"] == public
    provider = plan.one("aws:ecs/capacityProvider:CapacityProvider")["outputs"]["name"]
    service = plan.one("aws:ecs/service:Service")
    assert service["inputs"]["capacityProviderStrategies"][0]["capacityProvider"] == provider
    association = plan.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    assert plan.depends_on(service, association)
    instances = plan.within("seaport:index:EcsCluster", "aws:ec2/securityGroup:SecurityGroup")["outputs"]["id"]
    rules = plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert any(r["inputs"]["securityGroupId"] == instances and r["name"] == "web-from-alb" for r in rules)


def test_the_image_is_pinned_by_digest_and_served_on_dynamic_ports(plan):
    task = plan.one("aws:ecs/taskDefinition:TaskDefinition")
    (container,) = json.loads(task["inputs"]["containerDefinitions"])
    assert container["image"].startswith("nginxinc/nginx-unprivileged:1.27-alpine@sha256:")
    assert container["portMappings"][0]["hostPort"] == 0
    assert container["logConfiguration"]["options"]["awslogs-region"] == "eu-west-1"


def test_safe_defaults_come_with_the_components(plan):
    assert plan.one("aws:ec2/launchTemplate:LaunchTemplate")["inputs"]["metadataOptions"]["httpTokens"] == "required"
    logs = plan.within("seaport:index:ScaledWebService", "aws:cloudwatch/logGroup:LogGroup")
    assert logs["inputs"]["retentionInDays"] == 30
    assert plan.one("aws:ec2/flowLog:FlowLog")["inputs"]["trafficType"] == "ALL"
    balancer = plan.one("aws:lb/loadBalancer:LoadBalancer")["inputs"]
    assert balancer["accessLogs"]["enabled"] is True and balancer["dropInvalidHeaderFields"] is True
    service = plan.one("aws:ecs/service:Service")["inputs"]
    assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert plan.one("aws:appautoscaling/policy:Policy")["inputs"]["policyType"] == "TargetTrackingScaling"
    group = plan.one("aws:lb/targetGroup:TargetGroup")["inputs"]
    assert group["healthCheck"]["path"] == "/" and group["targetType"] == "instance"
