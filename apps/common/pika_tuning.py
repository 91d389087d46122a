"""One process-wide tweak to pika's asynchronous transport: fewer, larger writes.

pika buffers every AMQP frame as its own chunk and sends the chunks one
``send()`` call at a time: a publish is three frames (method, header, body), so
a sender at 30,000 messages/s makes 90,000 system calls a second, which is most
of its CPU on a small machine and takes CPU from the broker on the same host.
``coalesce_writes()`` makes the plaintext transport join what is buffered (up
to 256 KiB) into one chunk before sending. The bytes on the wire are the same.

It patches a private method, so it checks that pika still has the shape it
expects and otherwise does nothing (pika keeps working, only slower). TLS
transports are left alone: OpenSSL wants a retried write to repeat the same
buffer.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

MAX_COALESCED_BYTES = 256 * 1024


def coalesce_writes() -> bool:
    """Install the patch once; whether it is active."""
    try:
        from pika.adapters.utils import io_services_utils as transports

        base = transports._AsyncTransportBase
        plaintext = transports._AsyncPlaintextTransport
        original = base._produce
    except (ImportError, AttributeError):
        log.warning("pika internals changed: writes are not coalesced")
        return False
    if getattr(original, "coalescing", False):
        return True

    def _produce(self) -> None:
        buffers = getattr(self, "_tx_buffers", None)
        if buffers is not None and len(buffers) > 1 and isinstance(self, plaintext):
            chunks, size = [], 0
            while buffers and size < MAX_COALESCED_BYTES:
                chunk = buffers.popleft()
                chunks.append(chunk)
                size += len(chunk)
            buffers.appendleft(b"".join(chunks))
        original(self)

    _produce.coalescing = True
    base._produce = _produce
    return True
