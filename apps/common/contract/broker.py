"""What apps.send, apps.receive and the broker the infrastructure runs must agree on.

The apps declare the queues with ``queue_arguments`` only (the queue type, which
can never change). Everything an operator may want to change later, the
delivery limit and how and where failed messages are dead-lettered, lives in a
broker *policy* (``queue_policy``), because a queue's arguments are fixed at
declaration (declaring it again with other arguments fails with
PRECONDITION_FAILED) while a policy can be replaced at any time.

Where the infrastructure runs the broker, it loads ``definitions(...)`` at boot
(``definitions.import_backend = local_filesystem`` in rabbitmq.conf) or later
(``rabbitmqctl import_definitions``). On Amazon MQ it applies the same ``queue_policy(...)``
through the RabbitMQ management HTTP API (``PUT /api/policies/<vhost>/<name>``
with the entry's ``pattern``, ``definition``, ``priority`` and ``apply-to``) or
the web console, before the apps start. Without the policy, a message
apps.receive gives up on is dropped, not dead-lettered.

Broker versions: the policy keys exist since RabbitMQ 3.10 (at-least-once
dead-lettering was added in 3.10) and mean the same on 4.x. What differs on
4.x is counted by the consumer side: since 4.3 only ``basic.reject`` (not
``basic.nack``) counts a delivery as failed towards ``delivery-limit``, and
since 4.0 a quorum queue without a limit gets 20; this policy always sets one.
"""

from __future__ import annotations

import re

SERVICE_NAME = "rabbitmq"  # the broker's service name in Consul (one instance per node)
AMQP_PORT = 5672
AMQPS_PORT = 5671
QUEUE_TYPES = ("quorum", "classic")
DEFAULT_QUEUE = "messages"
DEFAULT_QUEUE_TYPE = "quorum"
DEFAULT_DELIVERY_LIMIT = 10
DEAD_LETTER_SUFFIX = ".dead"
# Only one policy applies to a queue: the matching one with the highest priority.
# Above 0, the default, so a catch-all policy (an operator's, a managed broker's)
# does not replace this one; check a broker's existing policies before relying on it.
POLICY_PRIORITY = 10
MAX_QUEUE_NAME_BYTES = 255 - len(DEAD_LETTER_SUFFIX)  # AMQP short string, with room for the suffix


def dead_letter_queue(queue: str) -> str:
    """The queue that receives ``queue``'s failed messages: ``<queue>.dead``."""
    return queue + DEAD_LETTER_SUFFIX


def queue_arguments(queue_type: str = DEFAULT_QUEUE_TYPE) -> dict[str, str]:
    """The arguments both apps declare the work queue and its dead-letter queue with.

    Only the type: a declaration with arguments that differ from the existing
    queue's is refused, so anything that may change belongs in ``queue_policy``.
    Raises ValueError for an unknown type.
    """
    _check_queue_type(queue_type)
    return {"x-queue-type": queue_type}


def queue_policy(
    queue: str = DEFAULT_QUEUE,
    queue_type: str = DEFAULT_QUEUE_TYPE,
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
    vhost: str = "/",
    max_length: int | None = None,
) -> dict:
    """The broker policy for the work queue ``queue`` of type ``queue_type``, as a definitions "policies" entry.

    Returns ``{"name", "vhost", "pattern", "apply-to", "definition", "priority"}``
    where ``pattern`` matches ``queue`` exactly (not its dead-letter queue) and
    ``definition`` sets:

    - ``delivery-limit``: a quorum queue dead-letters a message once it has
      failed this many deliveries (apps.receive counts the same limit from
      RABBITMQ_MAX_DELIVERIES, for classic queues too: keep the two equal);
    - ``dead-letter-exchange`` ``""`` (the default exchange) and
      ``dead-letter-routing-key`` ``<queue>.dead``: where failed messages go;
    - ``dead-letter-strategy`` ``at-least-once``: the queue keeps a dead-lettered
      message until ``<queue>.dead`` confirms it (the default, at-most-once,
      loses it if that fails). It needs:
    - ``overflow`` ``reject-publish``: a full queue refuses (nacks) new messages
      instead of dropping old ones; apps.send publishes a nacked message again.
      "Full" only exists with ``max_length`` (messages), which is optional.

    For a classic queue the definition leaves out ``delivery-limit`` and
    ``dead-letter-strategy``: classic queues have neither, and a policy with a
    key its queue type does not support does not apply to that queue at all
    (checked on 3.10). apps.receive counts the limit itself there.
    Raises ValueError for an unknown type, an unusable queue name or limit.
    """
    _check_queue_type(queue_type)
    _check_queue_name(queue)
    if not isinstance(delivery_limit, int) or delivery_limit < 1:
        raise ValueError(f"delivery_limit={delivery_limit!r}: use a positive integer")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
        raise ValueError(f"max_length={max_length!r}: use a positive integer or None")
    definition: dict[str, object] = {
        "delivery-limit": delivery_limit,
        "dead-letter-exchange": "",
        "dead-letter-routing-key": dead_letter_queue(queue),
        "dead-letter-strategy": "at-least-once",
        "overflow": "reject-publish",
    }
    if queue_type != "quorum":
        del definition["delivery-limit"], definition["dead-letter-strategy"]
    if max_length is not None:
        definition["max-length"] = max_length
    return {
        "name": f"seaport-{queue}",
        "vhost": vhost,
        "pattern": f"^{re.escape(queue)}$",
        "apply-to": "queues",
        "definition": definition,
        "priority": POLICY_PRIORITY,
    }


def definitions(
    queue: str = DEFAULT_QUEUE,
    queue_type: str = DEFAULT_QUEUE_TYPE,
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
    vhost: str = "/",
    max_length: int | None = None,
) -> dict:
    """A definitions document (imported at boot or by ``rabbitmqctl import_definitions``) for ``queue``.

    Holds the vhost, the work queue and its dead-letter queue (durable, declared
    exactly as the apps declare them, so their declarations change nothing) and
    ``queue_policy(queue, queue_type, delivery_limit, vhost, max_length)``. It has no users
    or permissions: the infrastructure adds the ones it generates. Serialize
    with ``json.dumps``.
    """
    arguments = queue_arguments(queue_type)
    policy = queue_policy(queue, queue_type, delivery_limit, vhost, max_length)
    return {
        "vhosts": [{"name": vhost}],
        "queues": [
            {"name": name, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": dict(arguments)}
            for name in (dead_letter_queue(queue), queue)
        ],
        "policies": [policy],
    }


def _check_queue_type(queue_type: str) -> None:
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"queue type {queue_type!r}: use one of {', '.join(QUEUE_TYPES)}")


def _check_queue_name(queue: str) -> None:
    if not queue or len(queue.encode()) > MAX_QUEUE_NAME_BYTES:
        raise ValueError(f"queue name {queue!r}: use 1 to {MAX_QUEUE_NAME_BYTES} bytes")
