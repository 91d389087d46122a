"""seaport's reusable Pulumi components for microservices on Amazon ECS (EC2).

    from components import Network, EcsCluster

Every component takes ``(name, args, opts)``, where ``args`` is a TypedDict
whose fields are documented with their defaults, parents its children, and
exposes plain outputs (ids, ARNs, names) to wire components together.
"""

from components.cluster import EcsCluster, EcsClusterArgs
from components.consul import ConsulMesh, ConsulMeshArgs
from components.images import ContainerImage, ContainerImageArgs, pinned_image
from components.messaging import RabbitMessaging, RabbitMessagingArgs
from components.network import Network, NetworkArgs
from components.service import ContainerService, ContainerServiceArgs
from components.validation import InvalidArgument
from components.web_service import ScaledWebService, ScaledWebServiceArgs

__version__ = "0.1.0"

# What other languages get through the component provider (provider/__main__.py).
COMPONENTS = [Network, EcsCluster, ContainerService, ScaledWebService, ConsulMesh, RabbitMessaging, ContainerImage]

__all__ = [
    "COMPONENTS",
    "ConsulMesh",
    "ConsulMeshArgs",
    "ContainerImage",
    "ContainerImageArgs",
    "ContainerService",
    "ContainerServiceArgs",
    "EcsCluster",
    "EcsClusterArgs",
    "InvalidArgument",
    "Network",
    "NetworkArgs",
    "RabbitMessaging",
    "RabbitMessagingArgs",
    "ScaledWebService",
    "ScaledWebServiceArgs",
    "pinned_image",
]
