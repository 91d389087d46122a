"""seaport's reusable Pulumi components for microservices on Amazon ECS (EC2).

    from components import Network, EcsCluster

Every component takes ``(name, args, opts)``, where ``args`` is a TypedDict
whose fields are documented with their defaults, parents its children, and
exposes plain outputs (ids, ARNs, names) to wire components together.
"""

from ._version import __version__
from .cluster import EcsCluster, EcsClusterArgs
from .consul import ConsulMesh, ConsulMeshArgs
from .images import ContainerImage, ContainerImageArgs, pinned_image
from .messaging import RabbitMessaging, RabbitMessagingArgs
from .network import Network, NetworkArgs
from .service import ContainerService, ContainerServiceArgs
from .validation import InvalidArgument
from .web_service import ScaledWebService, ScaledWebServiceArgs

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
    "__version__",
    "pinned_image",
]
