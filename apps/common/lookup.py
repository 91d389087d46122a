"""The routes of a sample-data backend: one name, or several in one request.

- ``GET /<path>/<name>``: the record, or 404 JSON for a malformed or unknown name.
- ``GET /<path>?<list_param>=a,b,c``: ``{"results": [...]}`` in the order asked,
  each the record or ``{"error", "status": 404, <key>: name}``; 400 JSON when
  the list is missing or longer than ``MAX_NAMES``.

The list form is what the portal uses: one request per backend per page
instead of one per name. On these small machines the HTTP handling, not the
lookup, is what costs CPU, and fewer round trips also mean fewer chances to
meet a slow one.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, request

from apps.common import names, web

MAX_NAMES = 50


def add_routes(
    app: Flask,
    *,
    path: str,
    list_param: str,
    key: str,
    parse: Callable[[str], str],
    find: Callable[[str], dict | None],
    delay_ms: int = 0,
) -> None:
    """Both routes for a record type named ``key`` (``"city"``, ``"symbol"``)."""
    what = "city name" if key == "city" else f"stock {key}"

    def answer(raw: str) -> tuple[dict, int]:
        try:
            name = parse(raw)
        except names.InvalidName as error:
            return {"error": f"malformed {what}: {error}", "status": 404}, 404
        record = find(name)
        if record is None:
            return {"error": f"unknown {key}", "status": 404, key: name}, 404
        return record, 200

    @app.get(f"/{path}/<name>", endpoint=f"{path}_one")
    def one(name: str):
        web.pause(delay_ms)
        return answer(name)

    @app.get(f"/{path}", endpoint=f"{path}_many")
    def many():
        web.pause(delay_ms)
        raw = request.args.get(list_param)
        if raw is None:
            return web.json_error(400, f"give ?{list_param}=a,b,c or use /{path}/<{key}>")
        listed = [entry for entry in raw.split(",") if entry.strip()]
        if len(listed) > MAX_NAMES:
            return web.json_error(400, f"at most {MAX_NAMES} names in one request")
        return {"results": [answer(entry)[0] for entry in listed]}
