"""What the portal page shows: panels of items, each a name and what its backend said about it.

The formatting happens here, in Python, so the template only prints strings
(Jinja2 escapes each one) and stays cheap to render.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.common import names
from apps.portal.backends import INVALID, OK, TIMEOUT, UNKNOWN, Outcome

MAX_QUERY_CHARS = 512  # of ?symbols= or ?cities=; enough for PORTAL_MAX_ITEMS names
LABEL_CHARS = 40  # of a malformed name echoed back on the page


@dataclass
class Item:
    label: str  # the name as asked (escaped when rendered)
    outcome: Outcome

    def cells(self, kind: str) -> tuple[str, str, str]:
        """``(heading, detail, value)`` of the item's row in a ``kind`` panel; no value for a problem."""
        out, data = self.outcome, self.outcome.data
        if out.state == OK and kind == "stocks":
            price = f"{_number(data['price'], 2)} {data.get('currency') or ''}".rstrip()
            return str(data["symbol"]), str(data["name"]), price
        if out.state == OK:
            return str(data["city"]), str(data["country"]), f"{_number(data['temp'], 1)} °{data['format']}"
        if out.state == INVALID:
            problem = "not a valid symbol" if kind == "stocks" else "not a valid city name"
        elif out.state == UNKNOWN:
            problem = out.message
        else:
            problem = "timed out" if out.state == TIMEOUT else "unavailable"
        return self.label, problem, ""


def _number(value, digits: int) -> str:
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


@dataclass
class Panel:
    key: str  # "stocks" or "weather": element ids and CSS classes
    title: str
    param: str  # the query parameter that lists the names
    items: list[Item]
    note: str = ""  # e.g. that the list was cut to the maximum

    @property
    def state(self) -> str:
        """ok, degraded (some calls failed) or unavailable (the backend failed every call)."""
        failed = [item for item in self.items if item.outcome.failed]
        answered = [item for item in self.items if not item.outcome.failed and item.outcome.state != INVALID]
        if failed and not answered:
            return "unavailable"
        return "degraded" if failed else "ok"

    @property
    def reason(self) -> str:
        """Why the backend failed, from the first failed call."""
        return next((item.outcome.message for item in self.items if item.outcome.failed), "")


def requested(raw: str | None, defaults: tuple[str, ...], parse, limit: int) -> tuple[list[tuple], str]:
    """``[(label, name or None if malformed)]`` from a query parameter, and a note if it was cut."""
    if raw is None or not raw.strip(",\t "):  # absent or emptied in the form: the defaults
        return [(name, name) for name in defaults], ""
    entries = [entry.strip() for entry in raw[:MAX_QUERY_CHARS].split(",") if entry.strip()]
    wanted, seen = [], set()
    for entry in entries:
        try:
            name = parse(entry)
        except names.InvalidName:
            name = None
        key = name or entry
        if key not in seen:
            seen.add(key)
            label = entry if len(entry) <= LABEL_CHARS else entry[: LABEL_CHARS - 1] + "…"
            wanted.append((label, name))
    note = f"showing the first {limit} of {len(wanted)}" if len(wanted) > limit else ""
    return wanted[:limit], note
