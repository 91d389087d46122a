"""One process-wide tweak to pika's asynchronous transport: fewer, larger writes.

pika buffers every AMQP frame as its own chunk and sends the chunks one
``send()`` call at a time: a publish is three frames (method, header, body), so
a sender at 30,000 messages/s makes 90,000 system calls a second, which is most
of its CPU on a small machine and takes CPU from the broker on the same host.
``coalesce_writes()`` makes the plaintext transport join what is buffered into
chunks of up to 256 KiB before sending. The bytes on the wire are the same.

It replaces a private method, so it is pinned: by default it is installed only
on the pika releases in ``TESTED_PIKA_VERSIONS`` (the transport code is the same
in both; tests/apps/test_units.py checks the patched method against the
installed pika). On any other release the apps run on stock pika, correct and
slower, and say so once. ``PIKA_COALESCE_WRITES``: ``auto`` (default),
``on`` (install on any release that still has the expected shape) or ``off``.
TLS transports are never patched: OpenSSL wants a retried write to repeat the
same buffer.
"""

from __future__ import annotations

import logging

from apps.common.config import ConfigError, env_str

log = logging.getLogger(__name__)

MAX_COALESCED_BYTES = 256 * 1024
# Releases whose _AsyncTransportBase._produce / _tx_buffers this patch was run against.
TESTED_PIKA_VERSIONS = frozenset({"1.3.2", "1.4.4"})
MODES = ("auto", "on", "off")


def coalesce_writes(mode: str | None = None) -> bool:
    """Install the patch (once) if ``mode`` allows it; whether it is active.

    ``mode``: ``auto`` (only on TESTED_PIKA_VERSIONS), ``on`` or ``off`` (removes
    it if installed); default: ``PIKA_COALESCE_WRITES`` or ``auto``.
    """
    mode = (mode or env_str("PIKA_COALESCE_WRITES", "auto")).lower()
    if mode not in MODES:
        raise ConfigError(f"PIKA_COALESCE_WRITES={mode!r}: use one of {', '.join(MODES)}")
    try:
        import pika
        from pika.adapters.utils import io_services_utils as transports

        base = transports._AsyncTransportBase
        plaintext = transports._AsyncPlaintextTransport
        current = base._produce
    except (ImportError, AttributeError):
        log.warning("pika internals changed: writes are not coalesced")
        return False
    original = getattr(current, "original", current)
    if mode == "off":
        base._produce = original
        return False
    if mode == "auto" and pika.__version__ not in TESTED_PIKA_VERSIONS:
        base._produce = original
        log.info(
            "writes are not coalesced: the patch was not tested on this pika release",
            extra={"fields": {"pika": pika.__version__, "tested": sorted(TESTED_PIKA_VERSIONS)}},
        )
        return False
    if current is not original:
        return True  # installed already

    def _produce(self) -> None:
        buffers = getattr(self, "_tx_buffers", None)
        if buffers is not None and len(buffers) > 1 and isinstance(self, plaintext):
            # All of the buffer, not just its head: pika's loop sends chunk after chunk until the socket is
            # full, so frames left unjoined behind a first large chunk would each cost a send() (and a TCP
            # segment the broker reads on its own), which is what a sender with a full window has buffered.
            joined = _joined(buffers)
            buffers.clear()
            buffers.extend(joined)
        original(self)

    _produce.original = original
    base._produce = _produce
    return True


def _joined(chunks) -> list[bytes]:
    """``chunks`` joined, in order, into as few as possible of at most MAX_COALESCED_BYTES (a larger one alone)."""
    joined: list[bytes] = []
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        if pending and size + len(chunk) > MAX_COALESCED_BYTES:
            joined.append(b"".join(pending))
            pending, size = [], 0
        pending.append(chunk)
        size += len(chunk)
    joined.append(b"".join(pending))
    return joined
