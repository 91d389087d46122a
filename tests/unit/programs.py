"""Programs the component tests share."""

from seaport import EcsCluster
from seaport.tools.testing import run
from tests.unit.references import NETWORK


def on_a_new_cluster(component, name: str, container: dict):
    """The plan of a program that makes an EcsCluster "main" and, on it, ``component(name, ...)`` running
    ``container``: the cluster's reference comes from the same program, not from another stack."""

    def program():
        cluster = EcsCluster("main", {"network": NETWORK})
        component(name, {"cluster": cluster.reference, "container": container})

    return run(program)
