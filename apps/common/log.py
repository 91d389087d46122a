"""Structured (JSON lines) logging to stdout, the format CloudWatch Logs indexes.

Usage::

    log = setup_logging("send")
    log.info("published", extra={"fields": {"count": 10}})

Each record is one JSON object with ``time``, ``level``, ``service``,
``message`` and any ``fields`` given. ``LOG_LEVEL`` sets the level (INFO).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line."""

    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(service: str, level: str | None = None) -> logging.Logger:
    """Send every log record to stdout as JSON and return the app's logger."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("LOG_LEVEL") or "INFO").upper())
    # pika logs every reconnect attempt at WARNING with a traceback; our own
    # messages say what happened, so keep pika's to errors.
    logging.getLogger("pika").setLevel(logging.ERROR)
    return logging.getLogger(service)
