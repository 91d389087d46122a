"""The private parts of Pulumi's Python SDK that seaport's offline tools rely on, in one place.

The mock monitor, the wire (de)serialization and the program runner are not
public API: an SDK upgrade may move them. Everything seaport.tools needs from
inside the SDK is imported here and nowhere else, and
``tests/unit/test_sdk_adapter.py`` fails loudly, naming what moved, when an
upgrade breaks one of them.
"""

from __future__ import annotations

from typing import Any

from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc as _rpc
from pulumi.runtime import settings as _settings
from pulumi.runtime.proto import resource_pb2 as _resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

MockMonitor = _mocks.MockMonitor
MockResourceArgs = _mocks.MockResourceArgs
RegisterResourceResponse = _resource_pb2.RegisterResourceResponse
sync_await = _sync_await
ensure_event_loop = _ensure_event_loop
run_program_function = run_pulumi_func
reset_options = _settings.reset_options
root_resource = _settings.get_root_resource
resolve_callbacks = _mocks._resolve_callbacks

# The names the adapter promises; the adapter test checks each one exists and is callable.
REQUIRED = (
    "MockMonitor",
    "MockResourceArgs",
    "RegisterResourceResponse",
    "sync_await",
    "ensure_event_loop",
    "run_program_function",
    "reset_options",
    "root_resource",
    "resolve_callbacks",
)


def deserialize(struct: Any) -> dict[str, Any]:
    """Wire properties -> Python values (secrets stay wrapped: see ``is_secret``)."""
    return _rpc.deserialize_properties(struct)


def serialize(values: dict[str, Any]) -> Any:
    """Python values -> wire properties."""
    return _sync_await(_rpc.serialize_properties(values, {}))


def is_secret(value: Any) -> bool:
    return _rpc.is_rpc_secret(value)


def as_secret(value: Any) -> Any:
    """``value`` marked secret on the wire, as the engine marks additional secret outputs."""
    return _rpc.wrap_rpc_secret(value)
