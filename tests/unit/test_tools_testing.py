"""seaport.tools.testing.run: full garbage collections held off while a program runs, plans unchanged by it."""

import gc

import pytest

from seaport import ContainerService, EcsCluster, Network
from seaport.tools.testing import run

IMAGE = "public.ecr.aws/nginx/nginx@sha256:" + "0" * 64


def services(count, between=lambda: None):
    """A network, a cluster and ``count`` ContainerServices on it; ``between`` runs after each service."""

    def program():
        network = Network("net", {})
        cluster = EcsCluster("apps", {"network": network.reference})
        for index in range(count):
            ContainerService(f"svc{index}", {"cluster": cluster.reference, "container": {"image": IMAGE, "port": 80}})
            between()

    return program


@pytest.fixture
def thresholds():
    """Distinctive collector thresholds for the test, the session's back afterwards."""
    saved = gc.get_threshold()
    gc.set_threshold(600, 9, 8)
    yield (600, 9, 8)
    gc.set_threshold(*saved)


def test_only_young_collections_run_while_a_program_runs_and_the_thresholds_come_back(thresholds):
    seen = []
    run(lambda: seen.append(gc.get_threshold()))
    assert seen[0][:2] == thresholds[:2], "young generations are collected as usual"
    assert seen[0][2] >= 2**30, "no full collection while the program runs"
    assert gc.get_threshold() == thresholds


class Refused(Exception):
    pass


def test_the_thresholds_come_back_when_a_program_fails(thresholds):
    def program():
        raise Refused("bad")

    assert isinstance(run(program, expect=Refused), Refused)
    assert gc.get_threshold() == thresholds
    with pytest.raises(Refused):
        run(program)
    assert gc.get_threshold() == thresholds


def test_a_plan_is_the_same_whenever_the_collector_runs():
    """Full collections forced between services change nothing: resources, inputs, outputs, dependencies."""
    plain = run(services(3))
    collected = run(services(3, between=gc.collect))
    assert plain.to_json() == collected.to_json()
    for index in range(3):
        service = plain.named(f"svc{index}", "aws:ecs/service:Service")
        task = plain.named(f"svc{index}-task", "aws:ecs/taskDefinition:TaskDefinition")
        assert plain.depends_on(service, task)
        assert plain.depends_on(service, plain.named("apps", "aws:ecs/cluster:Cluster"))
        assert plain.depends_on(task, plain.named(f"svc{index}-logs", "aws:cloudwatch/logGroup:LogGroup"))
