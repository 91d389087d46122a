"""Validation of the names the web apps accept: city names and stock symbols.

One definition shared by the backends (weather, stocks) and the portal, so
the portal rejects exactly what a backend would reject before calling it.
"""

from __future__ import annotations

import re

CITY_MAX_CHARS = 64
SYMBOL_MAX_CHARS = 8
# Letters of any script, plus the punctuation real city names use
# ("St. John's", "Stratford-upon-Avon", "Rio de Janeiro").
_CITY_PUNCTUATION = frozenset(" .'-")
# NYSE/Nasdaq style: 1-5 letters, optionally a class suffix ("BRK.B", "BF-B").
_SYMBOL = re.compile(r"[A-Z]{1,5}(?:[.-][A-Z]{1,2})?")


class InvalidName(ValueError):
    """A city or symbol that is malformed; the message says why (without echoing it)."""


def city(raw: str) -> str:
    """A well-formed city name with its spaces tidied, or InvalidName."""
    name = " ".join(raw.split())
    if not name:
        raise InvalidName("a city name is required")
    if len(name) > CITY_MAX_CHARS:
        raise InvalidName(f"a city name has at most {CITY_MAX_CHARS} characters")
    if not name[0].isalpha() or not all(ch.isalpha() or ch in _CITY_PUNCTUATION for ch in name):
        raise InvalidName("a city name has letters, spaces and . ' - only, and starts with a letter")
    return name


def city_key(name: str) -> str:
    """The lookup key of a well-formed city name: case and spacing don't matter."""
    return " ".join(name.casefold().split())


def symbol(raw: str) -> str:
    """A well-formed stock symbol in upper case, or InvalidName."""
    name = raw.strip().upper()
    if not name:
        raise InvalidName("a stock symbol is required")
    if len(name) > SYMBOL_MAX_CHARS or not _SYMBOL.fullmatch(name):
        raise InvalidName("a stock symbol is 1-5 letters with an optional .X or -X class suffix")
    return name
