"""``python -m seaport.tools.synth --stack dev --out build/dev``: the offline plan of a stack.

Runs the project's ``__main__.py`` under ``seaport.tools.testing`` mocks with the
values of ``Pulumi.<stack>.yaml`` and writes:

- ``<out>/resources.json``: every resource (type, name, parent, inputs,
  outputs, dependencies, additional secret outputs) and the stack's exports, in the
  format README's Quick start documents;
- ``<out>/system.mmd`` (Mermaid) and ``<out>/system.dot``: the deployed system
  as its users think of it (``seaport.tools.diagram``), generated from the
  plan, plus ``<out>/system.svg`` when Graphviz is installed.

It prints a one-screen summary. Invalid settings print the settings error and
exit with status 2 (no traceback): nothing is written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pulumi
import yaml

from ..args import InvalidArgument
from . import diagram, reactions
from .testing import Plan, run_program, stack_config


class PlanError(Exception):
    """The stack can't be planned; the message says why."""


def synth(project_dir: Path, stack: str) -> Plan:
    """Plan ``stack`` of the project in ``project_dir``."""
    project_file = project_dir / "Pulumi.yaml"
    if not project_file.exists():
        raise PlanError(f"no Pulumi.yaml in {project_dir}")
    project = yaml.safe_load(project_file.read_text())
    name = project["name"]
    try:
        config = stack_config(project_dir, stack)
    except FileNotFoundError as error:
        raise PlanError(str(error)) from None
    declared = set((project.get("config") or {}).keys())
    unknown = [k for k in config if k.startswith(f"{name}:") and k.split(":", 1)[1] not in declared]
    if unknown:
        raise PlanError(
            "invalid stack settings:\n"
            + "\n".join(f"  - {k} (in Pulumi.{stack}.yaml) is not a setting declared in Pulumi.yaml" for k in unknown)
        )
    main = project_dir / (project.get("main") or "__main__.py")
    if main.is_dir():
        main = main / "__main__.py"
    try:
        return run_program(main, stack=stack, config=config, project=name)
    except (pulumi.RunError, InvalidArgument) as error:
        raise PlanError(str(error)) from None


def write(plan: Plan, out: Path) -> list[Path]:
    """Write resources.json and the diagrams; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "resources.json", out / "system.mmd", out / "system.dot"]
    files[0].write_text(json.dumps(plan.to_json(), indent=2, sort_keys=True, default=str) + "\n")
    files[1].write_text(diagram.mermaid(plan))
    files[2].write_text(diagram.dot(plan))
    if shutil.which("dot"):
        svg = out / "system.svg"
        subprocess.run(["dot", "-Tsvg", str(files[2]), "-o", str(svg)], check=True)
        files.append(svg)
    return files


def summary(plan: Plan, files: list[Path]) -> str:
    """One screen: resource counts by type, scaling reaction times, the stack's exports."""
    counts = Counter(r["type"] for r in plan.resources if r["custom"])
    components = Counter(r["type"].rsplit(":", 1)[-1] for r in plan.resources if not r["custom"])
    lines = [
        f"seaport plan of stack '{plan.stack}': {sum(counts.values())} resources "
        f"in {sum(components.values())} components "
        f"({', '.join(f'{n} {t}' for t, n in sorted(components.items()))})",
        "",
    ]
    cells = [f"{n:>3} {_short(t)}" for t, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
    width = max((len(c) for c in cells), default=0) + 2
    per_line = max(1, 100 // width)
    for i in range(0, len(cells), per_line):
        lines.append("".join(c.ljust(width) for c in cells[i : i + per_line]).rstrip())
    times = reactions.reaction_times(plan)
    if times:
        lines += [
            "",
            "Worst-case scaling reaction: alarm evaluation + cooldown (leaves out about a minute of metric delay,",
            "task start and health checks, and a new instance when the cluster is full; the end-to-end estimate",
            "adds them):",
        ]
        lines += [f"  {r.describe()}" for r in times]
    lines += ["", "Exports:"]
    for key, value in sorted(plan.outputs.items()):
        text = " ".join((json.dumps(value) if not isinstance(value, str) else value).split())
        lines.append(f"  {key:<24} {text if len(text) <= 90 else text[:87] + '...'}")
    lines += ["", "Wrote " + ", ".join(str(f) for f in files)]
    return "\n".join(lines)


def _short(token: str) -> str:
    """``aws:ecs/service:Service`` -> ``ecs.Service``; ``docker:index/image:Image`` -> ``docker.Image``."""
    package, module, kind = token.split(":")
    module = module.split("/")[0]
    return f"{package if module == 'index' else module}.{kind}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seaport.tools.synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--out", type=Path, required=True, help="directory for resources.json and diagrams")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="where Pulumi.yaml is (.)")
    options = parser.parse_args(argv)
    print(f"==> planning stack '{options.stack}' offline (mocks, no cloud calls)", flush=True)
    try:
        plan = synth(options.project_dir.resolve(), options.stack)
    except PlanError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    files = write(plan, options.out)
    print(summary(plan, files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
