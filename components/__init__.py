"""seaport: reusable Pulumi components for microservices on Amazon ECS (EC2).

    from seaport import EcsCluster, Network, ScaledWebService

    network = Network("app", {})
    cluster = EcsCluster("app", {"network": network.reference})
    web = ScaledWebService("web", {"cluster": cluster.reference, "container": {"image": ..., "port": 8080}})

Every component takes ``(name, args, opts)``, where ``args`` is a TypedDict
whose fields are documented with their defaults; components connect through
reference objects (``network.reference``, ``cluster.reference``,
``mesh.discovery``). Bad arguments raise ``InvalidArgument`` listing every
problem before anything is created. Offline testing tools are in
``seaport.tools`` (``seaport.tools.testing.run_program``).
"""

from ._version import __version__
from .args import InvalidArgument, Problem
from .autoscaling import AutoscalingOptions, ScalingMode, ServiceAutoscaling, ServiceAutoscalingArgs
from .cluster import EcsCluster, EcsClusterArgs
from .consul import ConsulMesh, ConsulMeshArgs
from .containers import Container, HealthCheck, MountPoint
from .discovery import ConsulService
from .images import ContainerImage, ContainerImageArgs, Platform, pinned_image
from .load_balancer import LoadBalancerOptions
from .messaging import BrokerMode, QueueType, RabbitMessaging, RabbitMessagingArgs
from .monitoring import (
    ConsulWatch,
    MessagingWatch,
    Monitoring,
    MonitoringArgs,
    ServiceWatch,
    WebServiceWatch,
    deployment_alarm_names,
)
from .network import Network, NetworkArgs
from .pki import CertificateAuthority, CertificateAuthorityArgs, CertificateAuthorityReference
from .references import ClusterReference, DiscoveryReference, NetworkReference
from .service import ContainerService, ContainerServiceArgs, NetworkMode, Scheduling, ServiceOptions
from .web_service import ScaledWebService, ScaledWebServiceArgs

# What other languages get through the component provider (provider/__main__.py).
COMPONENTS = [
    Network,
    CertificateAuthority,
    EcsCluster,
    ContainerService,
    ServiceAutoscaling,
    ScaledWebService,
    ConsulMesh,
    RabbitMessaging,
    ContainerImage,
    Monitoring,
]

__all__ = [
    "COMPONENTS",
    "AutoscalingOptions",
    "BrokerMode",
    "CertificateAuthority",
    "CertificateAuthorityArgs",
    "CertificateAuthorityReference",
    "ClusterReference",
    "ConsulMesh",
    "ConsulMeshArgs",
    "ConsulService",
    "ConsulWatch",
    "Container",
    "ContainerImage",
    "ContainerImageArgs",
    "ContainerService",
    "ContainerServiceArgs",
    "DiscoveryReference",
    "EcsCluster",
    "EcsClusterArgs",
    "HealthCheck",
    "InvalidArgument",
    "LoadBalancerOptions",
    "MessagingWatch",
    "Monitoring",
    "MonitoringArgs",
    "MountPoint",
    "Network",
    "NetworkArgs",
    "NetworkMode",
    "NetworkReference",
    "Platform",
    "Problem",
    "QueueType",
    "RabbitMessaging",
    "RabbitMessagingArgs",
    "ScaledWebService",
    "ScaledWebServiceArgs",
    "ScalingMode",
    "Scheduling",
    "ServiceAutoscaling",
    "ServiceAutoscalingArgs",
    "ServiceOptions",
    "ServiceWatch",
    "WebServiceWatch",
    "__version__",
    "deployment_alarm_names",
    "pinned_image",
]
