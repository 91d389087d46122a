"""The policy pack Pulumi runs: `pulumi preview --policy-pack policy` (from the repository root)."""

from pulumi_policy import EnforcementLevel, PolicyPack

try:  # run by Pulumi from this directory
    from rules import POLICIES
except ImportError:  # imported as a package
    from policy.rules import POLICIES

PolicyPack(
    name="seaport-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
