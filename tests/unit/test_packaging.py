"""`pip install` of the repository ships the components package and its dependencies, nothing else."""

import subprocess
import sys
import zipfile

import pytest

from tests.unit.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("seaport_components-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_holds_the_components_package_only(wheel):
    names = wheel.namelist()
    modules = {n for n in names if n.startswith("seaport/")}
    for module in (
        "__init__.py",
        "network.py",
        "cluster.py",
        "service.py",
        "web_service.py",
        "consul.py",
        "messaging.py",
        "images.py",
        "tools/testing.py",
        "tools/synth.py",
        "contract/__init__.py",
        "py.typed",
    ):
        assert f"seaport/{module}" in modules
    top_level = {n.split("/")[0] for n in names if not n.startswith("seaport_components-")}
    assert top_level == {"seaport"}


def test_wheel_declares_its_runtime_dependencies(wheel):
    (metadata,) = [n for n in wheel.namelist() if n.endswith("METADATA")]
    requires = [line for line in wheel.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    text = "\n".join(requires)
    for dependency in ("pulumi", "pulumi-aws", "pulumi-docker", "pulumi-random", "pyyaml"):
        assert f"Requires-Dist: {dependency}" in text
    assert all("<" in line for line in requires), "dependencies are pinned with ranges"
