"""Tags every seaport resource carries."""

from __future__ import annotations


def name_tags(tags: dict[str, str] | None, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's tags, plus ``Name`` (what the EC2 console shows) and any extras."""
    return {**(tags or {}), **(extra or {}), "Name": name}
