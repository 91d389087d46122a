"""Component arguments: defaults declared once, every problem reported at once.

Each component module declares ``DEFAULTS`` next to its ``...Args`` TypedDict
(a test checks that every field's docstring states the same default) and a
``problems(args)`` function that returns every bad argument as a ``Problem``
instead of stopping at the first. The component raises ``InvalidArgument``
with all of them before it registers anything; ``settings.py`` calls the same
functions and renames each argument path to the stack setting it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, NamedTuple


class Problem(NamedTuple):
    """One bad argument: its path (``autoscaling.min_tasks``), its value and what is accepted."""

    path: str
    value: Any
    message: str

    def __str__(self) -> str:
        if self.value is MISSING:
            return f"{self.path} {self.message}"
        value = self.value.value if isinstance(self.value, Enum) else self.value
        return f"{self.path}={value!r} {self.message}"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


class InvalidArgument(ValueError):
    """Component arguments are invalid; ``problems`` lists every one, each naming the argument and what is accepted."""

    def __init__(self, problems: Iterable[Problem | str]):
        self.problems = [p if isinstance(p, Problem) else Problem(str(p), MISSING, "") for p in problems]
        lines = [str(p).rstrip() for p in self.problems]
        super().__init__(lines[0] if len(lines) == 1 else "invalid arguments:\n" + "\n".join(f"  - {x}" for x in lines))


class Problems(list[Problem]):
    """Collects problems; ``check(path, value, message_or_none)`` adds one when the message is set."""

    def __init__(self, prefix: str = ""):
        super().__init__()
        self.prefix = prefix

    def check(self, path: str, value: Any, message: str | None) -> None:
        if message:
            self.append(Problem(self.prefix + path, value, message))

    def require(self, args: Mapping[str, Any], *keys: str, why: str = "") -> None:
        """Each key must be present, not None and not empty."""
        for key in keys:
            if args.get(key) is None or args.get(key) == "":
                self.append(Problem(self.prefix + key, MISSING, "is required" + (f" {why}" if why else "")))

    def missing(self, path: str, why: str) -> None:
        """An argument that is required in this situation, e.g. ``missing("container.port", "with ...")``."""
        self.append(Problem(self.prefix + path, MISSING, f"is required {why}"))

    def extend_under(self, prefix: str, problems: Iterable[Problem]) -> None:
        """Add problems of a nested argument (``container`` -> ``container.cpu``)."""
        for p in problems:
            self.append(Problem(f"{self.prefix}{prefix}.{p.path}", p.value, p.message))


def with_defaults(args: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` with every declared default filled in; an explicit None means "the default"."""
    given = {k: v for k, v in (args or {}).items() if v is not None}
    return {**defaults, **given}


def raise_if(problems: list[Problem]) -> None:
    if problems:
        raise InvalidArgument(problems)
