"""Deterministic sample data for the demo backends (no internet at run time).

Values are derived from a SHA-256 of the name, so every process, replica and
restart answers the same for the same name (Python's ``hash()`` is salted per
process and would not). Every answer carries ``SAMPLE_MARK`` so nobody takes
it for a real measurement or quote.
"""

from __future__ import annotations

import hashlib

SAMPLE_MARK = {"sample": True, "source": "sample data: deterministic, derived from the name, not real"}


def stable_fraction(*parts: str) -> float:
    """A number in [0, 1) that depends only on ``parts``."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def stable_value(low: float, high: float, *parts: str, digits: int = 2) -> float:
    """A number in [low, high], rounded to ``digits``, that depends only on ``parts``."""
    return round(low + stable_fraction(*parts) * (high - low), digits)
