"""Checks shared by the stack settings and the components' arguments.

Each check returns ``None`` when the value is fine, or a sentence saying what
is accepted; callers (``args.Problems.check``) prefix it with the name of the
argument or setting, so every error names what to fix
(``seaport:azCount=1 must be between 2 and 6``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

_INSTANCE_TYPE = re.compile(r"^(?P<family>[a-z][a-z0-9-]*\d[a-z0-9-]*)\.(?P<size>[a-z0-9]+)$")
_VPC_ID = re.compile(r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$")
_SUBNET_ID = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$")
_TAG_TEXT = re.compile(r"^[\w\s+=.:/@-]*$")


def int_between(value: object, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be a whole number"
    if not low <= value <= high:
        return f"must be between {low} and {high}"
    return None


def one_of(value: object, accepted: Iterable[object]) -> str | None:
    accepted = tuple(accepted)
    if value not in accepted:
        return "must be one of " + ", ".join(str(a) for a in accepted)
    return None


def cidr_block(value: str) -> str | None:
    """An IPv4 network in CIDR form with a prefix AWS accepts for a VPC (/16 to /28)."""
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        return f"is not a valid IPv4 CIDR block ({error}); use e.g. 10.0.0.0/16"
    if network.version != 4:
        return "must be an IPv4 CIDR block, e.g. 10.0.0.0/16"
    if not 16 <= network.prefixlen <= 28:
        return "must have a prefix length between /16 and /28 (the sizes AWS allows for a VPC)"
    return None


def subnets_fit(cidr: str, prefix_length: int, needed: int) -> str | None:
    """``needed`` subnets of ``/prefix_length`` fit in ``cidr``."""
    network = ipaddress.ip_network(cidr)
    if not network.prefixlen <= prefix_length <= 28:
        return f"must be between {network.prefixlen} (the VPC's own prefix) and 28"
    available = 2 ** (prefix_length - network.prefixlen)
    if available < needed:
        return f"gives room for {available} subnets in {cidr}, and {needed} are needed"
    return None


def carve_subnets(cidr: str, prefix_length: int, count: int) -> list[str]:
    """The first ``count`` subnets of ``/prefix_length`` in ``cidr``, in order."""
    subnets = ipaddress.ip_network(cidr).subnets(new_prefix=prefix_length)
    return [str(next(subnets)) for _ in range(count)]


def instance_type(value: str) -> str | None:
    if not isinstance(value, str) or not _INSTANCE_TYPE.match(value):
        return "is not an EC2 instance type; use family.size, e.g. t3.small or m7g.large"
    return None


def instance_architecture(value: str) -> str:
    """``arm64`` for Graviton families (a ``g`` after the generation digit: t4g, m7g, c6gn), else ``x86_64``."""
    family = _INSTANCE_TYPE.match(value).group("family")
    return "arm64" if re.match(r"^[a-z]+\d+[a-z]*g[a-z]*$", family) else "x86_64"


def platform_matches(platform: str, instance: str) -> str | None:
    expected = "linux/arm64" if instance_architecture(instance) == "arm64" else "linux/amd64"
    if platform != expected:
        return f"needs platform {expected} (images built for {platform} would not start)"
    return None


def vpc_id(value: str) -> str | None:
    return None if _VPC_ID.match(value or "") else "is not a VPC id (vpc- and 8 or 17 hex digits)"


def subnet_ids(values: Iterable[str], minimum: int) -> str | None:
    values = list(values)
    bad = [v for v in values if not _SUBNET_ID.match(str(v))]
    if bad:
        return f"has {', '.join(map(str, bad))}, not subnet ids (subnet- and 8 or 17 hex digits)"
    if len(set(values)) != len(values):
        return "lists a subnet more than once"
    if len(values) < minimum:
        return f"needs at least {minimum} subnet ids (in different Availability Zones)"
    return None


def log_retention(value: object) -> str | None:
    return one_of(value, LOG_RETENTION_DAYS)


def certificate_arn(value: str) -> str | None:
    if value and not _ACM_ARN.match(value):
        return "is not an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)"
    return None


def url_path(value: str) -> str | None:
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 1024 or " " in value:
        return "must be a URL path starting with / (no spaces, at most 1024 characters)"
    return None


def tags(values: Mapping[str, str]) -> str | None:
    """AWS tag rules: keys 1-128 characters, values up to 256, no ``aws:`` prefix."""
    for key, value in values.items():
        if not 1 <= len(key) <= 128 or not _TAG_TEXT.match(key) or key.lower().startswith("aws:"):
            return f"has tag key {key!r}: keys are 1-128 letters, digits, spaces or _.:/=+-@, not aws:*"
        if len(value) > 256 or not _TAG_TEXT.match(value):
            return f"has tag {key}={value!r}: values are up to 256 letters, digits, spaces or _.:/=+-@"
    return None


def semver(value: str) -> str | None:
    if not re.match(r"^\d+\.\d+\.\d+$", value or ""):
        return "must be an exact release, e.g. 1.22.7"
    return None


_RABBITMQ_IMAGE = re.compile(
    r"^(?:[a-z0-9.-]+(?:/[a-z0-9._-]+)*/)?rabbitmq:(?P<major>\d+)\.\d+\.\d+-management(-alpine)?(@sha256:[0-9a-f]{64})?$"
)


def rabbitmq_image(value: str) -> str | None:
    """A pinned RabbitMQ 4.x management image (from any registry), optionally already by digest."""
    match = _RABBITMQ_IMAGE.match(value or "")
    if not match:
        return (
            "must be a pinned management image, e.g. public.ecr.aws/docker/library/rabbitmq:4.3.4-management "
            "(optionally @sha256:<digest>)"
        )
    if int(match["major"]) < 4:
        return "is RabbitMQ 3.x, which is out of support: use a 4.x release"
    return None


def mq_instance_type(value: str) -> str | None:
    if not re.match(r"^mq\.[a-z0-9]+\.[a-z0-9]+$", value or ""):
        return "is not an Amazon MQ instance type, e.g. mq.m7g.large"
    return None


def mq_engine_version(value: str) -> str | None:
    if not re.match(r"^\d+\.\d+(\.\d+)?$", value or ""):
        return "is not an engine version, e.g. 4.2"
    return None


def mq_engine_runs_on(engine_version: str, instance_type: str) -> str | None:
    """Amazon MQ for RabbitMQ 4.x runs only on Graviton (mq.m7g.*) brokers; 3.13 also on mq.t3.micro and mq.m5."""
    if mq_engine_version(engine_version) or mq_instance_type(instance_type):
        return None  # reported on their own
    if int(engine_version.split(".")[0]) >= 4 and not instance_type.startswith("mq.m7g."):
        return f"cannot run amazon_mq_engine_version={engine_version} (RabbitMQ 4.x runs on mq.m7g.* only)"
    return None


def queue_name(value: str) -> str | None:
    if not re.match(r"^[A-Za-z0-9_.:-]{1,255}$", value or "") or value.startswith("amq."):
        return "must be 1-255 letters, digits or _.:- and not start with amq."
    return None
