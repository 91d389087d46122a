"""CertificateAuthority: one internal CA for TLS inside the system, and the certificates it issues.

The CA's key stays in the Pulumi state (encrypted, as a secret) and nowhere
else; issued certificates' keys go to Secrets Manager, where the process that
serves with them reads them at start. Certificates are renewed by ``pulumi
up`` once they are inside their early-renewal window (run it at least monthly;
README, Security).
"""

from typing import Any, NamedTuple, TypedDict

import pulumi
import pulumi_tls as tls

from . import outputs
from . import validation as check
from .args import Problem, Problems, raise_if, with_defaults
from .references import get
from .secrets import StoredSecret

KEY_ALGORITHM = "ECDSA"
KEY_CURVE = "P256"
DEFAULTS: dict[str, Any] = {
    "common_name": "seaport internal CA",
    "validity_days": 3650,
    "certificate_validity_days": 365,
    "tags": {},
}
RENEW_BEFORE_HOURS = 30 * 24  # a certificate within 30 days of expiry is replaced by the next `pulumi up`
SERVER_USES = ["digital_signature", "key_encipherment", "server_auth", "client_auth"]


class CertificateAuthorityReference(TypedDict):
    """What issuing a certificate takes (the key is a secret output)."""

    certificate_pem: pulumi.Input[str]
    """The CA certificate (PEM): what clients trust. Required."""
    private_key_pem: pulumi.Input[str]
    """The CA's private key (PEM, secret). Required."""
    certificate_validity_days: pulumi.Input[int]
    """Validity of the certificates issued with this reference. Required."""


class CertificateAuthorityArgs(TypedDict, total=False):
    common_name: str
    """Common name of the CA certificate. Default ``"seaport internal CA"``."""
    validity_days: int
    """Validity of the CA certificate (365-7300). Default ``3650``."""
    certificate_validity_days: int
    """Validity of each certificate it issues (30-825); renewed by ``pulumi up`` in its last 30 days. Default
    ``365``."""
    tags: dict[str, str]
    """Tags added to the secrets holding issued keys. Default ``{}``."""


class CertificateAuthority(pulumi.ComponentResource):
    """A private certificate authority (ECDSA P-256) made by the program for TLS between seaport's parts.

    Pass ``reference`` as ``ca`` to the components that serve TLS inside the
    system (the Consul servers, the broker); clients get ``certificate_pem``.
    """

    certificate_pem: pulumi.Output[str]
    """The CA certificate (PEM), to trust."""
    reference: pulumi.Output[CertificateAuthorityReference]
    """What the components that serve TLS take as ``ca``."""

    def __init__(self, name: str, args: CertificateAuthorityArgs, opts: pulumi.ResourceOptions | None = None):
        raise_if(problems(args))
        super().__init__("seaport:index:CertificateAuthority", name, None, opts)
        a = with_defaults(args, DEFAULTS)
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=child)
        certificate = tls.SelfSignedCert(
            f"{name}-cert",
            private_key_pem=key.private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=a["common_name"], organization="seaport"),
            validity_period_hours=a["validity_days"] * 24,
            early_renewal_hours=RENEW_BEFORE_HOURS,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        outputs.register(
            self,
            certificate_pem=certificate.cert_pem,
            # a dict of outputs; other languages see an object
            reference={
                "certificate_pem": certificate.cert_pem,
                "private_key_pem": key.private_key_pem,
                "certificate_validity_days": a["certificate_validity_days"],
            },
        )


class Issued(NamedTuple):
    certificate_pem: pulumi.Output[str]
    """The certificate (PEM), signed by the CA."""
    key: StoredSecret
    """Its private key, in Secrets Manager."""


def issue(
    name: str,
    ca: Any,
    common_name: str,
    dns_names: list[str],
    ip_addresses: list[str],
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> Issued:
    """A server (and client) certificate for ``dns_names``/``ip_addresses``, its key kept in Secrets Manager."""
    child = pulumi.ResourceOptions(parent=parent)
    key = tls.PrivateKey(f"{name}-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=child)
    request = tls.CertRequest(
        f"{name}-request",
        private_key_pem=key.private_key_pem,
        subject=tls.CertRequestSubjectArgs(common_name=common_name, organization="seaport"),
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        opts=child,
    )
    certificate = tls.LocallySignedCert(
        f"{name}-cert",
        cert_request_pem=request.cert_request_pem,
        ca_cert_pem=get(ca, "certificate_pem"),
        ca_private_key_pem=get(ca, "private_key_pem"),
        validity_period_hours=get(ca, "certificate_validity_days").apply(lambda days: int(days) * 24),
        early_renewal_hours=RENEW_BEFORE_HOURS,
        allowed_uses=SERVER_USES,
        opts=child,
    )
    stored = StoredSecret(f"{name}-key", key.private_key_pem, f"TLS private key of {common_name}", tags, child)
    return Issued(certificate.cert_pem, stored)


def problems(args: CertificateAuthorityArgs) -> list[Problem]:
    a = with_defaults(args, DEFAULTS)
    found = Problems()
    found.check("validity_days", a["validity_days"], check.int_between(a["validity_days"], 365, 7300))
    days = a["certificate_validity_days"]
    found.check("certificate_validity_days", days, check.int_between(days, 30, 825))
    if isinstance(days, int) and isinstance(a["validity_days"], int) and days > a["validity_days"]:
        found.check("certificate_validity_days", days, f"must not exceed validity_days={a['validity_days']}")
    found.check("tags", a["tags"], check.tags(a["tags"]))
    return found
