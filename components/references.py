"""How components connect: small reference objects made of outputs.

``Network`` offers a ``NetworkReference``, ``EcsCluster`` a ``ClusterReference``
and ``ConsulMesh`` a ``DiscoveryReference``. A component that needs another one
takes its reference (``cluster=``, ``discovery=``) instead of ids copied by hand,
and never reaches into the other component's children.

References are TypedDicts so that other Pulumi languages see them as object
types in the package schema; in Python they are plain dicts of outputs.
"""

from typing import Any, NotRequired, TypedDict

import pulumi

from .args import MISSING, Problem


class NetworkReference(TypedDict):
    """Where things go in a VPC."""

    vpc_id: pulumi.Input[str]
    """The VPC id. Required."""
    public_subnet_ids: pulumi.Input[list[str]]
    """Public subnets, one per AZ: internet-facing load balancers go here. Required."""
    instance_subnet_ids: pulumi.Input[list[str]]
    """Subnets for instances and private endpoints: the private ones when there are any, else the public ones.
    Required."""
    instances_need_public_ip: pulumi.Input[bool]
    """True when instances sit in public subnets without NAT and need a public address to reach AWS APIs. Required."""


class ClusterReference(TypedDict):
    """An ECS cluster with EC2 capacity, and the network it lives in."""

    arn: pulumi.Input[str]
    """ARN of the ECS cluster. Required."""
    name: pulumi.Input[str]
    """Name of the ECS cluster (CloudWatch dimensions, scalable targets). Required."""
    capacity_provider: pulumi.Input[str]
    """Name of the capacity provider, resolved only once it is associated with the cluster (so services that
    name it wait for the association). Required."""
    instance_security_group_id: pulumi.Input[str]
    """Security group of the container instances; components add the ingress rules they need to it. Required."""
    network: pulumi.Input[NetworkReference]
    """The network of the cluster. Required."""
    dedicated_instances: NotRequired[pulumi.Input[list[str]]]
    """Names of the cluster's dedicated instances (``EcsCluster.dedicated_instances``). Default ``[]``."""


NETWORK_FIELD = ClusterReference.__annotations__["network"]
# The one optional field of a cluster reference (a reference made by hand may leave it out).
CLUSTER_REFERENCE_DEFAULTS: dict[str, Any] = {"dedicated_instances": []}


class DiscoveryReference(TypedDict):
    """How tasks use Consul: reach the local agent, look services up, register themselves."""

    agent_address: pulumi.Input[str]
    """``consul-agent:8500``: the instance's Consul agent as a bridge-mode container sees it (CONSUL_HTTP_ADDR).
    Required."""
    agent_hosts: pulumi.Input[dict[str, str]]
    """The /etc/hosts entry that resolves the agent's host name inside a container (``extraHosts``). Required."""
    reader_token_secret_arn: pulumi.Input[str]
    """Secret with the ACL token that may look services up (CONSUL_HTTP_TOKEN of the apps). Required."""
    registrar_image: pulumi.Input[str]
    """Image (by digest) of the registrar sidecar that registers a container's dynamic host port. Required."""
    registrar_token_secret_arn: pulumi.Input[str]
    """Secret with the ACL token that may register services (the registrar's CONSUL_HTTP_TOKEN). Required."""
    broker_token_secret_arn: NotRequired[pulumi.Input[str]]
    """Secret with the ACL token clustered RabbitMQ nodes form their cluster with (Consul peer discovery: the
    ``rabbitmq`` service, a startup lock under ``rabbitmq/``). Needed by ``broker_mode="cluster"``. Default:
    none."""


def problems(reference: Any, kind: type) -> list[Problem]:
    """Missing keys of a reference given as a dict (an output from another language is checked by its type).

    Paths are relative to the reference: ``network.vpc_id``."""
    found: list[Problem] = []
    if not isinstance(reference, dict):
        return found
    for key, annotation in kind.__annotations__.items():
        if key not in kind.__required_keys__:
            continue
        if reference.get(key) is None or reference.get(key) == "":
            found.append(Problem(key, MISSING, f"is required in a {kind.__name__}"))
        elif annotation is NETWORK_FIELD:
            found += [
                Problem(f"{key}.{p.path}", p.value, p.message) for p in problems(reference[key], NetworkReference)
            ]
    return found


def get(reference: Any, key: str) -> pulumi.Output[Any]:
    """One field of a reference, whether it is a dict of outputs (Python) or an output of a dict (other languages)."""
    if isinstance(reference, dict):
        return pulumi.Output.from_input(reference[key])
    return pulumi.Output.from_input(reference).apply(lambda r: r[key])


def subnet_ids(cluster: Any, kind: str) -> pulumi.Output[list[str]]:
    """The cluster network's ``public`` or ``instance`` subnet ids."""
    return get(cluster, "network").apply(lambda n: n[f"{kind}_subnet_ids"])
