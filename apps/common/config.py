"""Reading app settings from environment variables with clear errors.

Apps are configured only by environment variables (12-factor); command-line
flags override them. Every bad value raises ``ConfigError`` naming the
variable, the value and what is accepted, so a misconfigured task fails with
one readable line in its log instead of a traceback.
"""

from __future__ import annotations

import os


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    """The variable's value, ``default`` when unset or empty."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if required and default is None:
        raise ConfigError(f"{name} is not set: it is required")
    return default


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer variable within ``[minimum, maximum]``."""
    return _env_number(name, default, int, "an integer", minimum, maximum)


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """A number variable within ``[minimum, maximum]``."""
    return _env_number(name, default, float, "a number", minimum, maximum)


def _env_number(name, default, parse, kind, minimum, maximum):
    """The variable read by ``parse`` (``default`` when unset) within the range; a ConfigError if it is not ``kind``."""
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {kind}") from None
    return check_range(name, value, minimum, maximum)


def env_bool(name: str, default: bool) -> bool:
    """A boolean setting: 1/true/yes/on or 0/false/no/off (any case); anything else is a ConfigError."""
    raw = env_str(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: use true or false")


def check_range(name, value, minimum=None, maximum=None):
    """Return ``value`` or raise a ConfigError naming ``name`` and the accepted range."""
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} must be <= {maximum}")
    return value
