"""Run the policy pack against an offline plan: `python -m policy.offline build/dev/resources.json`.

Resource policies see each resource's inputs (what the engine checks at
preview); stack policies see every resource's state (the mocks' outputs,
which include the inputs). Exits 1 when anything is violated.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from policy.rules import RESOURCE_POLICIES, STACK_POLICIES


@dataclass(frozen=True)
class Violation:
    policy: str
    urn: str | None
    message: str


def _options(resource: dict[str, Any]) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=list(resource.get("additionalSecretOutputs", [])),
        parent=resource.get("parent"),
    )


def check(resources: list[dict[str, Any]]) -> list[Violation]:
    """Every violation of every policy in the pack over a plan's resources."""
    violations: list[Violation] = []
    custom = [r for r in resources if r.get("custom", True)]
    for policy in RESOURCE_POLICIES:
        for r in custom:
            args = ResourceValidationArgs(r["type"], r["inputs"], r["urn"], r["name"], _options(r), None)
            policy.validate(
                args,
                lambda message, urn=None, p=policy, r=r: violations.append(Violation(p.name, urn or r["urn"], message)),
            )
    stack = StackValidationArgs(
        [
            PolicyResource(
                r["type"],
                {**r["inputs"], **r["outputs"]},
                r["urn"],
                r["name"],
                _options(r),
                None,
                None,
                [],
                {},
            )
            for r in custom
        ]
    )
    for policy in STACK_POLICIES:
        policy.validate(stack, lambda message, urn=None, p=policy: violations.append(Violation(p.name, urn, message)))
    return violations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policy.offline", description=__doc__.split("\n\n")[0])
    parser.add_argument("plans", nargs="+", type=Path, help="resources.json files written by make plan")
    options = parser.parse_args(argv)
    failed = False
    for path in options.plans:
        document = json.loads(path.read_text())
        violations = check(document["resources"])
        policies = len(RESOURCE_POLICIES) + len(STACK_POLICIES)
        if violations:
            failed = True
            print(f"policy: {path}: {len(violations)} violation(s) of seaport-guardrails", file=sys.stderr)
            for v in violations:
                print(f"  [{v.policy}] {v.message}", file=sys.stderr)
        else:
            print(f"policy: {path}: all {policies} seaport-guardrails policies pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
