"""`pip install` of the repository ships the seaport package and its dependencies, nothing else, and a
program in another project imports it by a name its own folders can't shadow."""

import json
import re
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import venv
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.unit.conftest import REPO


@pytest.fixture(scope="module")
def wheel_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("seaport_components-*.whl")
    return path


@pytest.fixture(scope="module")
def wheel(wheel_path):
    return zipfile.ZipFile(wheel_path)


def test_wheel_holds_the_seaport_package_only(wheel):
    names = wheel.namelist()
    for module in (
        "__init__.py",
        "network.py",
        "cluster.py",
        "service.py",
        "web_service.py",
        "autoscaling.py",
        "consul.py",
        "messaging.py",
        "images.py",
        "rules.py",
        "py.typed",
        "templates/consul-server.sh",
        "tools/testing.py",
        "tools/synth.py",
        "contract/__init__.py",
    ):
        assert f"seaport/{module}" in names
    top_level = {n.split("/")[0] for n in names if not n.startswith("seaport_components-")}
    assert top_level == {"seaport"}


def test_wheel_declares_the_tested_dependency_ranges(wheel):
    (metadata,) = [n for n in wheel.namelist() if n.endswith("METADATA")]
    requires = {
        _requirement(line.removeprefix("Requires-Dist: "))
        for line in wheel.read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:")
    }
    locked_ranges = {
        _requirement(line.split("#")[0])
        for line in (REPO / "requirements.in").read_text().splitlines()
        if line.split("#")[0].strip()
    }
    assert requires == locked_ranges, "pyproject.toml's dependencies and requirements.in must agree"
    assert all(any(s.operator == "<" for s in specifier) for _, specifier in requires), "each has an upper bound"


def _requirement(text: str) -> tuple[str, SpecifierSet]:
    requirement = Requirement(text.strip())
    return requirement.name, requirement.specifier


def test_version_is_written_once():
    import seaport

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" in project["dynamic"] and "version" not in project
    declared = re.search(r'^__version__ = "([^"]+)"$', (REPO / "components" / "_version.py").read_text(), re.M)
    assert declared and seaport.__version__ == declared.group(1)


PROGRAM = textwrap.dedent(
    """
    import json
    import seaport
    from components import local_helper  # the project's own components/ package still works
    from seaport import ScaledWebService
    from seaport.tools.testing import run

    CLUSTER = {
        "arn": "arn:aws:ecs:us-east-1:123456789012:cluster/main",
        "name": "main",
        "capacity_provider": "main-capacity",
        "instance_security_group_id": "sg-0123456789abcdef0",
        "network": {
            "vpc_id": "vpc-0123456789abcdef0",
            "public_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
            "instance_subnet_ids": ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"],
            "instances_need_public_ip": False,
        },
    }
    web = {"cluster": CLUSTER, "container": {"image": local_helper(), "port": 80}}
    plan = run(lambda: ScaledWebService("web", web))
    print(json.dumps({
        "seaport": seaport.__file__,
        "types": sorted({r["type"] for r in plan.resources}),
    }))
    """
)


def test_installed_wheel_is_imported_as_seaport_beside_a_projects_own_components_package(wheel_path, tmp_path):
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=False)
    site = next((environment / "lib").glob("python3*/site-packages"))
    # The dependencies come from the test environment (no downloads); seaport only from the wheel.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    with zipfile.ZipFile(wheel_path) as archive:
        archive.extractall(site)
    project = tmp_path / "project"
    (project / "components").mkdir(parents=True)
    (project / "components" / "__init__.py").write_text("def local_helper():\n    return 'nginx@sha256:' + 'a' * 64\n")
    (project / "__main__.py").write_text(PROGRAM)
    python = environment / "bin" / "python"
    # A Pulumi program runs with its own folder first on sys.path, as here.
    result = subprocess.run(
        [str(python), str(project / "__main__.py")], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["seaport"].startswith(str(site)), "seaport must come from the installed wheel"
    assert {"aws:lb/loadBalancer:LoadBalancer", "aws:ecs/service:Service", "seaport:index:ServiceAutoscaling"} <= set(
        report["types"]
    )


def _pins(path) -> dict[str, str]:
    text = path.read_text()
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^ \\\n]+)", text, re.M)}


def test_the_locks_pin_every_package_once_with_hashes_and_agree_with_each_other():
    runtime, dev = _pins(REPO / "requirements.txt"), _pins(REPO / "requirements-dev.txt")
    assert runtime and dev
    for lock in (REPO / "requirements.txt", REPO / "requirements-dev.txt", *REPO.glob("apps/*/requirements.txt")):
        text = lock.read_text()
        for block in re.split(r"\n(?=[A-Za-z])", text.split("\n\n", 1)[-1]):
            if "==" in block:
                assert "--hash=sha256:" in block, f"{lock.name}: {block.splitlines()[0]} has no hash"
        assert "://" not in text and "/home/" not in text, f"{lock} must not name an index or a machine path"
    assert {name: dev[name] for name in runtime} == runtime, "the dev lock installs the runtime lock's versions"
    for app_lock in REPO.glob("apps/*/requirements.txt"):
        shared = set(_pins(app_lock)) & set(dev)
        assert {n: dev[n] for n in shared} == {n: _pins(app_lock)[n] for n in shared}, app_lock.parent.name
    for name, specifier in (_requirement(line.split("#")[0]) for line in _requirement_lines()):
        assert runtime[name.lower()] in specifier, f"requirements.txt pins {name} outside requirements.in"


def _requirement_lines() -> list[str]:
    return [line for line in (REPO / "requirements.in").read_text().splitlines() if line.split("#")[0].strip()]
