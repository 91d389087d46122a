"""Flask pieces shared by the HTTP apps: ``/health``, JSON errors, security headers.

Errors are always JSON (``{"error": ..., "status": ...}``), never Flask's HTML
error pages nor a stack trace: clients of these apps are programs, and an
unexpected exception is logged with its traceback on the server side only.
"""

from __future__ import annotations

import json
import logging
import time

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# JSON answers never need to load anything or be framed.
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"


def json_error(status: int, message: str, **fields) -> tuple[Response, int]:
    """An error answer: ``{"error": message, "status": status, **fields}``."""
    return jsonify({"error": message, "status": status, **fields}), status


def create_app(service: str, import_name: str) -> Flask:
    """A Flask app with ``GET /health``, JSON error pages and security headers."""
    app = Flask(import_name)
    app.json.sort_keys = False  # keep fields in the documented order

    @app.get("/health")
    def health():
        return {"status": "ok", "service": service}

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        response = error.get_response()  # keeps headers such as Allow on 405
        response.set_data(json.dumps({"error": error.description, "status": error.code}))
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        log.exception("unhandled error", extra={"fields": {"error": repr(error)}})
        return json_error(500, "internal error")

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", JSON_CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return app


def pause(delay_ms: int) -> None:
    """Artificial latency (``--delay-ms``) for tests and benchmarks."""
    if delay_ms > 0:
        time.sleep(delay_ms / 1000)
