"""What apps.send publishes: message ids, bodies, properties, and how many when.

Message ids are ``<run id>-<sequence>`` with the sequence counting from 0, so a
``--count N`` run publishes exactly the ids ``<run id>-0`` ... ``<run id>-(N-1)``
and a test (or an operator) can check that every one of them arrived.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass

import pika

from apps.common.config import ConfigError
from apps.common.rabbitmq import POISON_HEADER

RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

CONTENT_TYPE = "application/json"


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def message_id(run_id: str, seq: int) -> str:
    return f"{run_id}-{seq}"


@dataclass(slots=True)
class OutgoingMessage:
    message_id: str
    body: bytes
    properties: pika.BasicProperties


class MessageFactory:
    """Builds the persistent JSON messages of one run.

    Args:
        run_id: prefix of every message id of this run.
        text: the greeting carried in the body (the 2017 system sent "Hello World!").
        poison: mark every message as poison (see POISON_HEADER).
    """

    def __init__(self, run_id: str, text: str = "Hello World!", poison: bool = False, app_id="seaport-send"):
        if not RUN_ID.fullmatch(run_id):
            raise ConfigError(f"run id {run_id!r}: use 1-64 letters, digits, '.', '_' or '-'")
        self.run_id = run_id
        self.text = text
        self.app_id = app_id
        self.headers = {POISON_HEADER: True} if poison else None
        # The body is formatted, not json.dumps'ed: ~8x cheaper, which matters at
        # tens of thousands of messages a second. Only the text needs escaping
        # (done once); ids are plain by construction.
        self._text_json = json.dumps(text)

    def build(self, seq: int) -> OutgoingMessage:
        mid = f"{self.run_id}-{seq}"
        now = time.time()
        body = f'{{"id":"{mid}","seq":{seq},"text":{self._text_json},"sent_at":{now:.6f}}}'.encode()
        properties = pika.BasicProperties(
            content_type=CONTENT_TYPE,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=mid,
            timestamp=int(now),
            app_id=self.app_id,
            headers=self.headers,
        )
        return OutgoingMessage(mid, body, properties)


class MessageSource:
    """Hands out the next message, honouring ``count`` (stop after N) and ``rate`` (msgs/s).

    The rate is a token bucket refilled on every ``take``; it holds at most one
    second of tokens, so after a pause (window full, broker down) the sender
    catches up by at most ``rate`` messages instead of flooding.
    """

    def __init__(self, factory: MessageFactory, count: int | None = None, rate: float | None = None, clock=None):
        self.factory = factory
        self.count = count
        self.rate = rate
        self.issued = 0
        self._clock = clock or time.monotonic
        self._tokens = 1.0
        self._refilled_at = self._clock()

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.issued >= self.count

    def take(self) -> OutgoingMessage | None:
        """The next message, or None when the count is reached or the rate says wait."""
        if self.exhausted:
            return None
        if self.rate is not None:
            now = self._clock()
            self._tokens = min(max(1.0, self.rate), self._tokens + (now - self._refilled_at) * self.rate)
            self._refilled_at = now
            if self._tokens < 1.0:
                return None
            self._tokens -= 1.0
        message = self.factory.build(self.issued)
        self.issued += 1
        return message
