"""Every default is declared once: each field docstring's "Default ``X``" is what the module's DEFAULTS hold.

The docstrings are what users read (and what other languages get in the package
schema); the DEFAULTS dicts are what the components apply. A default changed
in one place only fails here.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import pkgutil
import re
import sys
import typing
from enum import Enum
from typing import Any

import pytest

import seaport
from seaport import (
    AutoscalingOptions,
    CertificateAuthorityArgs,
    ClusterReference,
    ConsulMeshArgs,
    ConsulService,
    Container,
    ContainerImageArgs,
    ContainerServiceArgs,
    EcsClusterArgs,
    HealthCheck,
    LoadBalancerOptions,
    MountPoint,
    NetworkArgs,
    RabbitMessagingArgs,
    ScaledWebServiceArgs,
    ServiceAutoscalingArgs,
    ServiceOptions,
    autoscaling,
    cluster,
    consul,
    containers,
    discovery,
    images,
    load_balancer,
    messaging,
    monitoring,
    network,
    pki,
    references,
    service,
    web_service,
)
from seaport.service import Volume
from seaport.tools.sdk import gc_paused

# "Default ``<literal>``", optionally followed by "(``<literal>`` for <case>)". "Default: ..." (with a colon)
# describes a default that is not a literal (none, the component's name, ...).
DEFAULT = re.compile(r"\bDefault\s+``(?P<value>.+?)``")
CASE_DEFAULT = re.compile(r"\bDefault\s+``.+?``\s*\(``(?P<value>.+?)``\s+for\s+(?P<case>[^)]+?)\)", re.S)

# (args TypedDict, the dict that applies its defaults, whether that dict holds only this TypedDict's fields).
# Option groups share their component's DEFAULTS, which also hold the component's own fields (tags, ...).
CASES: list[tuple[type, dict[str, Any], bool]] = [
    (NetworkArgs, network.DEFAULTS, True),
    (EcsClusterArgs, cluster.DEFAULTS, True),
    (ServiceOptions, service.DEFAULTS, False),
    (ContainerServiceArgs, service.DEFAULTS, True),
    (Container, containers.CONTAINER_DEFAULTS, True),
    (HealthCheck, containers.HEALTH_CHECK_DEFAULTS, True),
    (ScaledWebServiceArgs, web_service.DEFAULTS, True),
    (LoadBalancerOptions, load_balancer.DEFAULTS, True),
    (AutoscalingOptions, autoscaling.DEFAULTS, False),
    (ServiceAutoscalingArgs, autoscaling.DEFAULTS, True),
    (ConsulMeshArgs, consul.DEFAULTS, True),
    (RabbitMessagingArgs, messaging.DEFAULTS, True),
    (ContainerImageArgs, images.DEFAULTS, True),
    (ConsulService, discovery.CONSUL_SERVICE_DEFAULTS, True),
    (ClusterReference, references.CLUSTER_REFERENCE_DEFAULTS, True),
    (CertificateAuthorityArgs, pki.DEFAULTS, True),
    (monitoring.MonitoringArgs, monitoring.DEFAULTS, True),
    (monitoring.WebServiceWatch, monitoring.WEB_SERVICE_DEFAULTS, True),
    (monitoring.ServiceWatch, monitoring.SERVICE_DEFAULTS, True),
    (monitoring.MessagingWatch, monitoring.MESSAGING_DEFAULTS, True),
    (monitoring.ConsulWatch, monitoring.CONSUL_DEFAULTS, True),
]
# Defaults that differ in one case: "(``64`` for a sidecar)", "(``0`` for DAEMON)".
VARIANTS: list[tuple[type, str, dict[str, Any]]] = [
    (Container, "a sidecar", containers.SIDECAR_DEFAULTS),
    (ContainerServiceArgs, "DAEMON", service.DAEMON_DEFAULTS),
]
# TypedDicts that document a literal default without a DEFAULTS dict, and what checks it instead.
NOT_IN_A_DEFAULTS_DICT = {
    MountPoint: "read_only: containers.definition reads it with False; test_containers checks readOnly is False",
    Volume: "docker_volume: test_service checks that a volume without it is a host path volume",
}


def ids(cases):
    return [case[0].__name__ for case in cases]


def seaport_modules() -> list:
    return [importlib.import_module(info.name) for info in pkgutil.walk_packages(seaport.__path__, "seaport.")]


@functools.cache
def class_nodes(module_name: str) -> dict[str, ast.ClassDef]:
    with gc_paused():  # CPython 3.11's ast.parse is not reentrant (seaport.tools.sdk)
        tree = ast.parse(inspect.getsource(sys.modules[module_name]))
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring, inherited fields included (a TypedDict flattens its bases at runtime)."""
    module = sys.modules[cls.__module__]
    node = class_nodes(cls.__module__)[cls.__name__]
    docs: dict[str, str] = {}
    for base in node.bases:
        base_cls = getattr(module, base.id, None) if isinstance(base, ast.Name) else None
        if base_cls is not None and typing.is_typeddict(base_cls):
            docs.update(field_docs(base_cls))
    for statement, following in zip(node.body, node.body[1:], strict=False):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


class Unparsable(str):
    """A documented default that is not a Python literal: equal to nothing, so the checks name it."""

    def __repr__(self) -> str:
        return f"``{self}`` (not a Python literal)"


def literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return Unparsable(text)


@functools.cache
def documented_defaults(cls: type) -> dict[str, Any]:
    """Field -> the literal its docstring gives as "Default ``X``" (fields without one are left out)."""
    found = {}
    for field, doc in field_docs(cls).items():
        matches = DEFAULT.findall(doc)
        if len(matches) > 1:
            found[field] = Unparsable(f"{len(matches)} defaults stated")
        elif matches:
            found[field] = literal(matches[0])
    return found


@functools.cache
def documented_cases(cls: type) -> dict[str, dict[str, Any]]:
    """Case ("a sidecar", "DAEMON") -> field -> the literal documented for that case."""
    cases: dict[str, dict[str, Any]] = {}
    for field, doc in field_docs(cls).items():
        for match in CASE_DEFAULT.finditer(doc):
            cases.setdefault(" ".join(match["case"].split()), {})[field] = literal(match["value"])
    return cases


def args_typeddicts() -> list[type]:
    """Every TypedDict defined in a seaport module."""
    return [
        cls
        for module in seaport_modules()
        for cls in vars(module).values()
        if inspect.isclass(cls) and typing.is_typeddict(cls) and cls.__module__ == module.__name__
    ]


# Parse everything once, at collection: CPython 3.11's ast module can fail with "AST constructor recursion
# depth mismatch" after another test's very deep exception chain was rendered in the same process.
for _cls in args_typeddicts():
    documented_defaults(_cls)
    documented_cases(_cls)


def plain(value: Any) -> Any:
    """Enums compare by value."""
    return value.value if isinstance(value, Enum) else value


def same(documented: Any, declared: Any) -> bool:
    """Equal and of the same type (``True`` is not ``1``, ``30`` is not ``30.0``), containers item by item."""
    documented, declared = plain(documented), plain(declared)
    if type(documented) is not type(declared):
        return False
    if isinstance(documented, dict):
        return documented.keys() == declared.keys() and all(same(documented[k], declared[k]) for k in documented)
    if isinstance(documented, list | tuple):
        return len(documented) == len(declared) and all(same(a, b) for a, b in zip(documented, declared, strict=True))
    return documented == declared


def differences(documented: dict[str, Any], declared: dict[str, Any]) -> list[str]:
    lines = []
    for key in sorted(documented.keys() | declared.keys()):
        if key not in declared:
            lines.append(f"{key}: documented as {documented[key]!r}, missing from the defaults")
        elif key not in documented:
            lines.append(f"{key}: defaults to {declared[key]!r}, not documented as a default")
        elif not same(documented[key], declared[key]):
            lines.append(f"{key}: documented as {documented[key]!r}, declared as {declared[key]!r}")
    return lines


@pytest.mark.parametrize(("cls", "defaults", "complete"), CASES, ids=ids(CASES))
def test_every_documented_default_is_the_declared_one(cls, defaults, complete):
    documented = documented_defaults(cls)
    assert documented, f"{cls.__name__} documents no default: is the docstring pattern still 'Default ``X``'?"
    declared = {key: defaults[key] for key in documented if key in defaults}
    declared |= {key: value for key, value in defaults.items() if complete}
    assert differences(documented, declared) == []


@pytest.mark.parametrize(("cls", "defaults", "complete"), CASES, ids=ids(CASES))
def test_every_declared_default_is_a_documented_field(cls, defaults, complete):
    """Each DEFAULTS key is a field of the args (of the full args, for a shared dict)."""
    fields = field_docs(cls)
    assert set(fields) == set(cls.__annotations__), f"{cls.__name__}: a field has no docstring"
    if complete:
        assert sorted(set(defaults) - set(documented_defaults(cls))) == []


@pytest.mark.parametrize(("cls", "case", "variant"), VARIANTS, ids=[f"{c.__name__}-{k}" for c, k, _ in VARIANTS])
def test_case_defaults_differ_only_where_documented(cls, case, variant):
    """The variant holds the documented case value where there is one, the plain default everywhere else."""
    expected = documented_defaults(cls) | documented_cases(cls).get(case, {})
    assert documented_cases(cls).get(case), f"no field of {cls.__name__} documents a default for {case}"
    assert differences(expected, variant) == []


@pytest.mark.parametrize(("cls", "defaults", "complete"), CASES, ids=ids(CASES))
def test_no_case_default_goes_unchecked(cls, defaults, complete):
    """A new "(``x`` for <case>)" must come with the variant dict that applies it (and a VARIANTS entry)."""
    for case, fields in documented_cases(cls).items():
        assert any(
            variant_case == case and set(fields) <= set(field_docs(variant_cls))
            for variant_cls, variant_case, _ in VARIANTS
        ), f"{cls.__name__} documents defaults for {case!r} that no VARIANTS entry checks"


def test_every_args_typeddict_with_defaults_is_checked():
    """A new TypedDict documenting defaults can't slip by: it is in CASES or explained in NOT_IN_A_DEFAULTS_DICT."""
    checked = {cls for cls, _, _ in CASES} | set(NOT_IN_A_DEFAULTS_DICT)
    unchecked = [cls for cls in args_typeddicts() if documented_defaults(cls) and cls not in checked]
    assert [f"{cls.__module__}.{cls.__name__}" for cls in unchecked] == []


def test_parsing_reads_the_forms_used():
    """The patterns above, on the docstring forms the components use."""
    assert documented_defaults(ContainerImageArgs)["platform"] == "linux/amd64"  # split over two lines
    assert "dockerfile" not in documented_defaults(ContainerImageArgs)  # "Default: ``<context>/Dockerfile``"
    assert documented_defaults(NetworkArgs)["existing_vpc_id"] == ""  # "Default ``""`` (create a VPC)"
    assert documented_cases(Container)["a sidecar"] == {"essential": False, "cpu": 64, "memory_mib": 64}
    assert documented_cases(ContainerServiceArgs)["DAEMON"] == {"min_healthy_percent": 0, "max_percent": 100}
    assert not same(1, True) and not same(30, 30.0) and same(service.NetworkMode.BRIDGE, "bridge")
    assert not same(literal("<context>/Dockerfile"), "<context>/Dockerfile")
