"""Offline runs of Pulumi programs and components: a recording monitor and plans.

``run`` executes a function (or ``run_program`` a ``__main__.py``) under
seaport's mocks (``seaport.tools.mocks``) and returns a ``Plan``: every
resource with its type, name, parent, inputs (camelCase, as the engine
receives them), outputs (what the mocks returned) and the URNs it depends on,
plus the stack's exports. Secret values appear as ``"[secret]"``: inputs the
program made secret and outputs the provider marks secret (additional secret
outputs), as the engine would store them encrypted. Use it in your own tests::

    from seaport.tools.testing import run

    def test_cluster_requires_imdsv2():
        plan = run(lambda: EcsCluster("app", {"network": {...}}))
        template = plan.one("aws:ec2/launchTemplate:LaunchTemplate")
        assert template["inputs"]["metadataOptions"]["httpTokens"] == "required"

    def test_bad_arguments_are_refused():
        error = run(lambda: EcsCluster("app", {"network": {...}, "min_instances": -1}), expect=InvalidArgument)
        assert "min_instances" in str(error)

Each call sets fresh mocks and a fresh root stack, so runs don't leak into
each other (Pulumi's current unit-test pattern).
"""

from __future__ import annotations

import gc
import json
import runpy
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from . import sdk
from .mocks import DEFAULT_REGION, SeaportMocks

SECRET = "[secret]"  # noqa: S105 - the placeholder shown instead of a secret


class RecordingMonitor(sdk.MockMonitor):
    """A mock monitor that keeps each registration: type, name, parent, inputs, outputs, dependencies.

    It also does what the engine does with a resource's additional secret outputs: marks them secret
    in the state the program gets back, so secretness flows on exactly as in a deployment."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.records: list[dict[str, Any]] = []
        self.component_outputs: dict[str, dict] = {}

    def RegisterResource(self, request):
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        sdk.ensure_event_loop()
        inputs = sdk.deserialize(request.object)
        resource_id, state = self.mocks.new_resource(
            sdk.MockResourceArgs(
                typ=request.type,
                name=request.name,
                inputs=inputs,
                provider=request.provider,
                resource_id=request.importId,
                custom=request.custom or False,
                transforms=sdk.resolve_callbacks(request.transforms),
            )
        )
        for name in request.additionalSecretOutputs:
            if name in state:
                state[name] = sdk.as_secret(state[name])
        self.resources[urn] = sdk.MockMonitor.ResourceRegistration(urn, resource_id, state)
        dependencies = set(request.dependencies)
        for deps in request.propertyDependencies.values():
            dependencies.update(deps.urns)
        self.records.append(
            {
                "urn": urn,
                "type": request.type,
                "name": request.name,
                "parent": request.parent or None,
                "custom": bool(request.custom),
                "inputs": _redact(inputs),
                "outputs": _redact(state),
                "dependencies": sorted(dependencies),
                # the engine stores these encrypted (the policy pack checks generated secrets ask for it)
                **(
                    {"additionalSecretOutputs": sorted(request.additionalSecretOutputs)}
                    if request.additionalSecretOutputs
                    else {}
                ),
            }
        )
        return sdk.RegisterResourceResponse(urn=urn, id=resource_id, object=sdk.serialize(state))

    def RegisterResourceOutputs(self, request):
        self.component_outputs[request.urn] = _redact(sdk.deserialize(request.outputs))
        return super().RegisterResourceOutputs(request)


def _redact(value: Any) -> Any:
    """Secret values (passwords, tokens, keys) appear in plans as ``"[secret]"``, never in clear."""
    if sdk.is_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


@dataclass
class Plan:
    """What a program would create: resources in registration order and the stack's exports."""

    project: str
    stack: str
    resources: list[dict[str, Any]]
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, token: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == token]

    def one(self, token: str) -> dict[str, Any]:
        found = self.of_type(token)
        if len(found) != 1:
            raise AssertionError(f"expected one {token}, found {len(found)}")
        return found[0]

    def named(self, name: str, token: str | None = None) -> dict[str, Any]:
        """The one resource with this logical name (and type, when names repeat across types)."""
        found = [r for r in self.resources if r["name"] == name and token in (None, r["type"])]
        if len(found) != 1:
            raise AssertionError(f"expected one resource named {name!r}, found {len(found)}")
        return found[0]

    def within(self, component: str, token: str, name: str | None = None) -> dict[str, Any]:
        """The one ``token`` resource under the component of type ``component`` (and ``name``, if several)."""
        owners = [r for r in self.of_type(component) if name in (None, r["name"])]
        if len(owners) != 1:
            raise AssertionError(f"expected one {component} named {name!r}, found {len(owners)}")
        found = self.children(owners[0], token)
        if len(found) != 1:
            raise AssertionError(f"expected one {token} in {component} {owners[0]['name']}, found {len(found)}")
        return found[0]

    def children(self, parent: dict[str, Any], token: str | None = None) -> list[dict[str, Any]]:
        """Resources whose parent chain includes ``parent``."""
        by_urn = {r["urn"]: r for r in self.resources}  # once per call, not once per resource checked
        below = [r for r in self.resources if _descends(r, parent["urn"], by_urn)]
        return [r for r in below if token is None or r["type"] == token]

    def referenced(self, value: Any) -> dict[str, Any] | None:
        """The resource whose id or ARN is ``value`` (references are followed by value)."""
        for r in self.resources:
            if r["custom"] and value in (r["outputs"].get("id"), r["outputs"].get("arn")):
                return r
        return None

    def depends_on(self, resource: dict[str, Any], other: dict[str, Any]) -> bool:
        """Whether ``resource`` waits for ``other`` (explicitly or through one of its inputs)."""
        return other["urn"] in resource.get("dependencies", [])

    def to_json(self) -> dict[str, Any]:
        """The documented resources.json shape."""
        return {
            "project": self.project,
            "stack": self.stack,
            "resources": self.resources,
            "outputs": self.outputs,
        }


# CPython's cyclic collector runs a full collection, which scans every tracked object in the process (some
# 330,000 once pulumi_aws is imported), each time the objects kept since the last one have grown by a quarter.
# A plan builds its whole graph of Outputs, futures and tasks (~600 objects per resource) before the event loop
# resolves it, and all of it stays alive until the program ends: past ~140 resources full collections began,
# one per ~100,000 new objects, each scanning the imported modules and the plan so far and freeing next to
# nothing. That doubled the cost per resource from 10 to 50 ContainerServices (issue 15). While a program
# runs, only the young generations are collected (they free the SDK's short-lived cycles, so memory stays
# bounded); the full collection a big plan makes due runs once, after it, on the collector's own schedule.
_NO_FULL_COLLECTIONS = 2**31 - 1  # gen1 collections before a full one: never, in effect (a C int)
_gc_lock = threading.Lock()
_gc_depth = 0
_gc_saved: tuple[int, ...] = ()


@contextmanager
def _young_collections_only() -> Iterator[None]:
    """No full garbage collections inside; the thresholds as they were afterwards (nested and threaded uses too)."""
    global _gc_depth, _gc_saved
    with _gc_lock:
        if _gc_depth == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(_gc_saved[0], _gc_saved[1], _NO_FULL_COLLECTIONS)
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0:
                gc.set_threshold(*_gc_saved)


@contextmanager
def _program_dir(directory: Path) -> Iterator[None]:
    sys.path.insert(0, str(directory))
    try:
        yield
    finally:
        sys.path.remove(str(directory))


def run(
    program: Callable[[], Any],
    *,
    project: str = "seaport",
    stack: str = "test",
    config: dict[str, str] | None = None,
    mocks: pulumi.runtime.Mocks | None = None,
    expect: type[BaseException] | None = None,
) -> Any:
    """Run ``program`` (a function that creates resources) under fresh mocks; return its Plan.

    ``config`` maps full keys (``seaport:azCount``, ``aws:region``) to string values, as the
    engine would pass them. With ``expect``, the program must raise that exception, which is
    returned (an AssertionError says what happened instead); otherwise exceptions propagate.
    """
    if expect is not None:
        try:
            run(program, project=project, stack=stack, config=config, mocks=mocks)
        except Exception as error:
            # An error raised while outputs resolve reaches us wrapped by the SDK ("While processing input ...").
            cause: BaseException | None = error
            while cause is not None:
                if isinstance(cause, expect):
                    return cause
                cause = cause.__cause__ or cause.__context__
            raise
        raise AssertionError(f"the program did not raise {expect.__name__}")
    with _young_collections_only():
        return _run(program, project=project, stack=stack, config=config, mocks=mocks)


def _run(
    program: Callable[[], Any],
    *,
    project: str,
    stack: str,
    config: dict[str, str] | None,
    mocks: pulumi.runtime.Mocks | None,
) -> Plan:
    config = dict(config or {})
    mocks = mocks or SeaportMocks(region=config.get("aws:region", DEFAULT_REGION))
    monitor = RecordingMonitor(mocks)
    sdk.reset_options(project=project, stack=stack, preview=False)
    pulumi.runtime.set_all_config(config)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    exports: dict[str, Any] = {}

    def body():
        program()
        root = sdk.root_resource()
        return pulumi.Output.from_input(dict(root.outputs)).apply(exports.update)

    sdk.sync_await(sdk.run_program_function(lambda: sdk.sync_await(pulumi.Output.from_input(body()).future())))
    for record in monitor.records:
        if not record["custom"]:  # a component's outputs are what it registered
            record["outputs"] = monitor.component_outputs.get(record["urn"], {})
    # Registration order depends on how outputs resolve; sort so plans compare and diff cleanly.
    resources = sorted(_ints(monitor.records), key=lambda r: r["urn"])
    return Plan(project=project, stack=stack, resources=resources, outputs=_ints(exports))


def _ints(value: Any) -> Any:
    """Whole numbers as ints: the wire format carries every number as a double."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def run_program(
    main: Path | str,
    *,
    stack: str,
    config: dict[str, str] | None = None,
    project: str = "seaport",
    mocks: pulumi.runtime.Mocks | None = None,
) -> Plan:
    """Run a Pulumi program file (``__main__.py``) under mocks (seaport's unless given) with the stack config."""
    main = Path(main).resolve()
    with _program_dir(main.parent):
        return run(
            lambda: runpy.run_path(str(main), run_name="__main__"),
            project=project,
            stack=stack,
            config=config,
            mocks=mocks,
        )


def stack_config(project_dir: Path | str, stack: str) -> dict[str, str]:
    """The ``config:`` of ``Pulumi.<stack>.yaml`` as the engine passes it: full keys, string values."""
    import yaml

    path = Path(project_dir) / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path.name} in {Path(project_dir).resolve()}")
    values = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    return {key: _config_string(value) for key, value in values.items()}


def _config_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _descends(resource: dict[str, Any], ancestor: str, by_urn: dict[str, dict[str, Any]]) -> bool:
    """Whether ``ancestor`` is on ``resource``'s parent chain."""
    parent = resource["parent"]
    while parent:
        if parent == ancestor:
            return True
        parent = by_urn.get(parent, {}).get("parent")
    return False
