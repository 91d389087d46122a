"""``make scan``: an independent IaC scanner (checkov) over a stack's offline plan.

``python -m devtools.scan build/prod/resources.json --checkov .venv-scan/bin/checkov``

Converts the plan (``devtools.tfplan``) into a Terraform plan document, runs checkov over it
(``--framework terraform_plan``), and compares its failed checks with ``policy/accepted_findings.yaml``:
exit status 1 when a check fails that the file does not accept, or when the file accepts a finding
checkov no longer reports (a stale entry: remove it; ``make docs`` rewrites the README's list). Writes
``tfplan.json`` and checkov's ``checkov.json`` beside the plan.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devtools import tfplan

ACCEPTED = Path(__file__).resolve().parent.parent / "policy" / "accepted_findings.yaml"


@dataclass(frozen=True)
class Finding:
    check: str
    name: str
    resource: str
    guideline: str | None


@dataclass
class Acceptance:
    check: str
    resources: list[str]
    reason: str
    title: str = ""

    def covers(self, finding: Finding) -> bool:
        return finding.check == self.check and any(fnmatch.fnmatchcase(finding.resource, p) for p in self.resources)


def load_accepted(path: Path) -> list[Acceptance]:
    """The accepted findings: ``accepted: [{check, title, resources: [address patterns], reason}]``."""
    data = yaml.safe_load(path.read_text()) or {}
    out = []
    for index, entry in enumerate(data.get("accepted") or []):
        missing = [k for k in ("check", "title", "resources", "reason") if not entry.get(k)]
        if missing:
            raise ValueError(f"{path}: accepted[{index}] lacks {', '.join(missing)}")
        reason, title = (" ".join(entry[key].split()) for key in ("reason", "title"))
        out.append(Acceptance(entry["check"], list(entry["resources"]), reason, title))
    return out


def run_checkov(checkov: str, plan: Path, out: Path) -> dict[str, Any]:
    """Run checkov over a Terraform plan document; returns its JSON report (also written to ``out``)."""
    command = [checkov, "-f", str(plan), "--framework", "terraform_plan", "-o", "json", "--skip-download"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1) or not result.stdout.strip().startswith(("{", "[")):
        sys.stderr.write(result.stderr)
        raise RuntimeError(f"checkov failed (exit status {result.returncode})")
    out.write_text(result.stdout)
    report = json.loads(result.stdout)
    if isinstance(report, list):  # one entry per framework when several ran
        report = next(r for r in report if r.get("check_type") == "terraform_plan")
    return report


def unknown_to_checkov(checkov: str, types: set[str]) -> list[str]:
    """The Terraform types checkov's own resource registry doesn't list (a wrong name in the conversion)."""
    python = Path(checkov).parent / "python"
    code = (
        "import json; from checkov.common.checks_infra.resources_types import resources_types as r;"
        "print(json.dumps(sorted({t for ts in r.values() for t in ts})))"
    )
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return []  # an older or newer checkov without that registry: nothing to compare with
    known = set(json.loads(result.stdout))
    return sorted(t for t in types if t.startswith("aws_") and t not in known)


def findings(report: dict[str, Any], kind: str = "failed_checks") -> list[Finding]:
    return [
        Finding(c["check_id"], c["check_name"], c["resource"], c.get("guideline"))
        for c in report.get("results", {}).get(kind, [])
    ]


def compare(failed: list[Finding], accepted: list[Acceptance]) -> tuple[list[Finding], list[Finding], list[str]]:
    """(failed and accepted, failed and not accepted, stale acceptance patterns)."""
    ok = [f for f in failed if any(a.covers(f) for a in accepted)]
    bad = [f for f in failed if f not in ok]
    stale = [
        f"{a.check} {pattern}"
        for a in accepted
        for pattern in a.resources
        if not any(f.check == a.check and fnmatch.fnmatchcase(f.resource, pattern) for f in failed)
    ]
    return ok, bad, stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.scan", description=__doc__.splitlines()[0])
    parser.add_argument("resources", type=Path, help="resources.json written by seaport.tools.synth")
    parser.add_argument("--checkov", default="checkov", help="the checkov executable (default: on PATH)")
    parser.add_argument("--accepted", type=Path, default=ACCEPTED, help="accepted findings (YAML)")
    args = parser.parse_args(argv)

    out_dir = args.resources.parent
    converted = tfplan.convert(json.loads(args.resources.read_text()))
    plan = out_dir / "tfplan.json"
    plan.write_text(json.dumps(converted.document, indent=1, sort_keys=True) + "\n")
    for address, paths in converted.unverified.items():
        print(f"warning: {address}: unverified Terraform name for {', '.join(paths)}", file=sys.stderr)
    resources = len(converted.document["planned_values"]["root_module"]["resources"])
    print(f"==> {plan}: {resources} Terraform resources ({len(converted.skipped)} Pulumi resources left out)")

    types = {r["type"] for r in converted.document["planned_values"]["root_module"]["resources"]}
    for tf_type in unknown_to_checkov(args.checkov, types):
        print(f"warning: {tf_type} is not a resource type checkov knows; is the conversion right?", file=sys.stderr)
    report = run_checkov(args.checkov, plan, out_dir / "checkov.json")
    accepted = load_accepted(args.accepted)
    failed = findings(report)
    passed = findings(report, "passed_checks")
    ok, bad, stale = compare(failed, accepted)
    version = report.get("summary", {}).get("checkov_version", "?")
    print(f"==> checkov {version} (terraform_plan): {len(passed)} passed, {len(failed)} failed")

    by_check: dict[str, list[Finding]] = {}
    for f in ok:
        by_check.setdefault(f.check, []).append(f)
    for check, items in sorted(by_check.items()):
        reason = next(a.reason for a in accepted if a.covers(items[0]))
        print(f"    accepted {check} x{len(items)} ({items[0].name}): {reason}")
    for f in bad:
        where = f" - {f.guideline}" if f.guideline else ""
        print(f"    FAILED   {f.check} {f.resource}: {f.name}{where}")
    for entry in stale:
        print(f"    STALE    {entry}: accepted in {args.accepted.name} but no longer reported; remove it")
    # Not in the "N passed, N failed" form: CI reads that form as a test runner's result.
    print(
        f"scan summary: checks passed {len(passed)}, failed {len(failed)} "
        f"(accepted {len(ok)}, not accepted {len(bad)}), stale acceptances {len(stale)}"
    )
    return 1 if bad or stale else 0


if __name__ == "__main__":
    sys.exit(main())
