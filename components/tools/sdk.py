"""The private parts of Pulumi's Python SDK that seaport's offline tools rely on, in one place.

The mock monitor, the wire (de)serialization and the program runner are not
public API: an SDK upgrade may move them. Everything seaport.tools needs from
inside the SDK is imported here and nowhere else, and
``tests/unit/test_sdk_adapter.py`` fails loudly, naming what moved, when an
upgrade breaks one of them.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import inspect
import sys
import textwrap
from collections.abc import Iterator
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
    "document_inherited_fields",
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


def document_inherited_fields() -> None:
    """Let the component schema describe fields a TypedDict inherits.

    ``pulumi.provider.experimental`` reads a field's docstring from the source of the class it
    analyses, not of the base class that declares the field, so ``ContainerServiceArgs`` (which
    extends ``ServiceOptions``) would reach other languages with undocumented options. This looks
    the docstring up in the base classes named in the class statement. Idempotent.

    It also parses with the garbage collector paused. On CPython 3.11 ``ast.parse`` is not
    reentrant: a collection during a parse can run a finalizer that parses too (asyncio logging
    "exception was never retrieved" formats a traceback, whose carets come from ``ast.parse``),
    and the outer parse then fails with "AST constructor recursion depth mismatch". The analyzer
    swallows that error, and the schema would silently lose a component's descriptions.
    """
    from pulumi.provider.experimental import analyzer

    original = analyzer.Analyzer.get_docstring
    if getattr(original, "seaport_inherited", False):
        return

    def get_docstring(self: Any, typ: type, name: str) -> str | None:
        with gc_paused():
            found = original(self, typ, name)
        if found is not None:
            return found
        for base in _declared_bases(typ):
            found = get_docstring(self, base, name)
            if found is not None:
                return found
        return None

    get_docstring.seaport_inherited = True  # type: ignore[attr-defined]
    analyzer.Analyzer.get_docstring = get_docstring


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection (so no finalizer runs) in the block; as it was afterwards.

    Wrap an ``ast.parse`` (or ``inspect.getsource``, which parses) in a process that ran Pulumi
    programs: see ``document_inherited_fields`` for why a parse is not reentrant on CPython 3.11.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _declared_bases(typ: type) -> list[type]:
    """The classes named as bases in ``typ``'s class statement (a TypedDict's __mro__ forgets them)."""
    try:
        with gc_paused():
            tree = ast.parse(textwrap.dedent(inspect.getsource(typ)))
    except (OSError, TypeError, SyntaxError):
        return []
    module = sys.modules.get(typ.__module__)
    bases = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == typ.__name__:
            for base in node.bases:
                candidate = getattr(module, base.id, None) if isinstance(base, ast.Name) else None
                if isinstance(candidate, type) and candidate is not typ:
                    bases.append(candidate)
    return bases
