"""Regenerate the README's generated sections: `python -m devtools.readme [--check]`.

Sections sit between ``<!-- BEGIN generated:<name> -->`` and
``<!-- END generated:<name> -->`` markers:

- ``architecture``: the Mermaid topology of the dev stack's offline plan;
- ``settings``: every key of Pulumi.yaml with type, default, dev and prod values;
- ``policies``: the rules of the policy pack;
- ``accepted-findings``: the scanner's findings accepted on purpose
  (``policy/accepted_findings.yaml``, which ``make scan`` enforces);
- ``performance``: the figures of the last ``make bench``, from the committed
  ``docs/performance/results.json`` (benchmarks.report), whose charts
  (``docs/performance/*.svg``) are rendered here too.

It also writes the components' defaults into Pulumi.yaml (``default:`` of
every setting that is a component argument): the engine needs them there,
and the components own them (settings.ARGUMENTS says which is which).

``--check`` exits 1 when the README or Pulumi.yaml is stale (the tests run
it), so the docs can't drift from the code.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from seaport.tools import diagram
from seaport.tools.synth import synth

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PROJECT = REPO / "Pulumi.yaml"


def project_defaults(text: str) -> str:
    """Pulumi.yaml with each component argument's default as the component declares it."""
    import settings

    for key in settings.ARGUMENTS:
        value = settings.component_default(key)
        if value is None:
            continue
        pattern = re.compile(rf"(\n  {re.escape(key)}:\n(?:    (?!default:).*\n)*    default: ).*\n")
        if not pattern.search(text):
            raise SystemExit(f"Pulumi.yaml declares no default for {key}")
        text = pattern.sub(lambda m, value=value: m.group(1) + json.dumps(value) + "\n", text, count=1)
    return text


def settings_table() -> str:
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    stacks = {name: yaml.safe_load((REPO / f"Pulumi.{name}.yaml").read_text())["config"] for name in ("dev", "prod")}
    rows = [
        "| Key (`seaport:`) | Type | Default | dev | prod | Description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, spec in project["config"].items():
        kind = spec["type"] + (f" of {spec['items']['type']}" if spec["type"] == "array" else "")
        values = [_cell(spec.get("default"))]
        values += [_cell(stacks[s].get(f"seaport:{key}"), unset="") for s in ("dev", "prod")]
        rows.append(f"| `{key}` | {kind} | {' | '.join(values)} | {spec['description']} |")
    return "\n".join(rows)


def _cell(value, unset="") -> str:
    if value is None:
        return unset
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return f"`{json.dumps(value)}`"
    return f"`{value}`" if value != "" else '`""`'


def architecture() -> str:
    return "```mermaid\n" + diagram.mermaid(synth(REPO, "dev")) + "```"


def policies_table() -> str:
    from policy.rules import POLICIES

    rows = ["| Policy | Rule |", "| --- | --- |"]
    rows += [f"| `{p.name}` | {p.description} |" for p in POLICIES]
    return "\n".join(rows)


def accepted_findings() -> str:
    from devtools import scan

    rows = ["| checkov check | On | Why we accept it |", "| --- | --- | --- |"]
    for a in scan.load_accepted(scan.ACCEPTED):
        resources = ", ".join(f"`{r}`" for r in a.resources)
        rows.append(f"| `{a.check}`: {a.title} | {resources} | {a.reason.replace('|', '/')} |")
    return "\n".join(rows)


def performance() -> str:
    from benchmarks import report

    return report.markdown(report.load_results())


def stale_charts() -> list[str]:
    """The performance charts under docs/ that differ from what the committed figures render to."""
    from benchmarks import charts, report

    results = report.load_results()
    rendered = charts.render(results) if results else {}
    return [
        f"docs/performance/{name}"
        for name, svg in rendered.items()
        if not (report.DOCS_DIR / name).exists() or (report.DOCS_DIR / name).read_text() != svg
    ]


def write_charts() -> None:
    from benchmarks import report

    results = report.load_results()
    if results:
        report.write_charts(results, report.DOCS_DIR)


SECTIONS = {
    "architecture": architecture,
    "settings": settings_table,
    "policies": policies_table,
    "accepted-findings": accepted_findings,
    "performance": performance,
}


def render(text: str) -> str:
    for name, build in SECTIONS.items():
        pattern = re.compile(
            rf"(<!-- BEGIN generated:{name} -->\n)(?:.*?\n)?(<!-- END generated:{name} -->)", re.DOTALL
        )
        if not pattern.search(text):
            raise SystemExit(f"README.md has no generated:{name} section")
        content = build()
        text = pattern.sub(lambda m, content=content: m.group(1) + content + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate README.md's generated sections.")
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    options = parser.parse_args(argv)
    project = PROJECT.read_text()
    fresh_project = project_defaults(project)
    if options.check:
        stale = [p.name for p, old, new in ((PROJECT, project, fresh_project),) if old != new]
        if render(README.read_text()) != README.read_text():
            stale.append(README.name)
        stale += stale_charts()
        if stale:
            print(f"{', '.join(stale)} out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    PROJECT.write_text(fresh_project)
    README.write_text(render(README.read_text()))
    write_charts()
    print("Pulumi.yaml defaults and README.md regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
