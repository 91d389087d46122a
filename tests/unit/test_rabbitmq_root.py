"""devtools.rabbitmq_root: which root a node runs in, and what is refused before a node starts.

The root itself (a real 4.3 server booting in it) is tests/apps/test_broker_release.py.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from devtools import rabbitmq, rabbitmq_root
from seaport import broker


def fake_root(tmp_path: Path, version: str) -> Path:
    """A directory laid out as a root with RabbitMQ ``version`` installed (no working server in it)."""
    root = tmp_path / f"root-{version}"
    (root / rabbitmq_root.SERVER_LIB / f"rabbitmq_server-{version}").mkdir(parents=True)
    script = root / rabbitmq_root.SERVER_SCRIPT.lstrip("/")
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("#!/bin/sh\n")
    bundle = root / rabbitmq_root.CA_BUNDLE
    bundle.parent.mkdir(parents=True)
    bundle.write_text("")
    return root


def test_the_root_holds_the_release_seaport_deploys():
    image_release = re.search(r":(\d+\.\d+)\.\d+", broker.DEFAULT_RABBITMQ_IMAGE).group(1)
    assert image_release == rabbitmq_root.RELEASE


def test_a_root_of_the_wanted_release_is_accepted(tmp_path):
    assert rabbitmq_root.version(fake_root(tmp_path, f"{rabbitmq_root.RELEASE}.6")) == f"{rabbitmq_root.RELEASE}.6"


@pytest.mark.parametrize("version", ["3.10.8", "4.3.6"])
def test_installed_names_the_version_of_any_release_and_none_without_a_server(tmp_path, version):
    assert rabbitmq_root.installed(fake_root(tmp_path, version)) == version
    assert rabbitmq_root.installed(tmp_path / "empty") is None


@pytest.mark.parametrize("version", ["3.10.8", "4.2.1", "4.30.0"])
def test_a_root_of_another_release_is_refused(tmp_path, version):
    with pytest.raises(rabbitmq_root.RootError, match=rf"RabbitMQ {re.escape(version)} is installed there, 4\.3\.x"):
        rabbitmq_root.version(fake_root(tmp_path, version))


def test_a_directory_without_a_server_is_refused_with_how_to_build_one(tmp_path):
    with pytest.raises(rabbitmq_root.RootError) as caught:
        rabbitmq_root.version(tmp_path)
    message = str(caught.value)
    assert f"no RabbitMQ server in {tmp_path}" in message
    assert f"python -m devtools.rabbitmq_root build --root {tmp_path}" in message


@pytest.mark.parametrize("value", [None, "", "  "])
def test_without_the_variable_nodes_run_the_machines_server(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(rabbitmq_root.VARIABLE, raising=False)
    else:
        monkeypatch.setenv(rabbitmq_root.VARIABLE, value)
    assert rabbitmq_root.selected() is None
    assert rabbitmq.RabbitMQNode(data_dir=Path("/nonexistent")).root is None


def test_the_variable_selects_a_root_for_every_node(monkeypatch, tmp_path):
    root = fake_root(tmp_path, f"{rabbitmq_root.RELEASE}.4")
    monkeypatch.setenv(rabbitmq_root.VARIABLE, str(root))
    assert rabbitmq.RabbitMQNode(data_dir=tmp_path / "data").root == root.resolve()
    assert rabbitmq.available()


def test_a_variable_naming_no_root_fails_before_any_node_starts(monkeypatch, tmp_path):
    monkeypatch.setenv(rabbitmq_root.VARIABLE, str(tmp_path / "missing"))
    with pytest.raises(rabbitmq_root.RootError, match=rf"^{rabbitmq_root.VARIABLE}=.*/missing: no RabbitMQ server"):
        rabbitmq.RabbitMQNode(data_dir=tmp_path / "data")
    assert not rabbitmq.available()


def test_a_wrapper_command_is_refused_in_a_root(tmp_path):
    root = fake_root(tmp_path, f"{rabbitmq_root.RELEASE}.4")
    with pytest.raises(rabbitmq.RabbitMQError, match="command and root together"):
        rabbitmq.RabbitMQNode(data_dir=tmp_path / "data", root=root, command=["/usr/local/bin/wrapper"])


def test_a_node_can_ask_for_the_machines_server_whatever_the_variable_says(monkeypatch, tmp_path):
    monkeypatch.setenv(rabbitmq_root.VARIABLE, str(fake_root(tmp_path, f"{rabbitmq_root.RELEASE}.4")))
    node = rabbitmq.RabbitMQNode(data_dir=tmp_path / "data", root=rabbitmq_root.MACHINE, command=["/wrapper"])
    assert node.root is None
    assert node.in_root(["rabbitmqctl", "status"]) == ["rabbitmqctl", "status"]


def test_a_root_without_ca_certificates_is_refused(tmp_path):
    """4.x's HTTP client (Consul peer discovery) needs them to boot; a root built without them is built again."""
    root = fake_root(tmp_path, f"{rabbitmq_root.RELEASE}.6")
    (root / rabbitmq_root.CA_BUNDLE).unlink()
    with pytest.raises(rabbitmq_root.RootError, match=r"no CA certificates .* build the root again"):
        rabbitmq_root.version(root)


FAKE_MMDEBSTRAP = """#!{python}
import sys
from pathlib import Path
suite, target = sys.argv[-2], Path(sys.argv[-1])
versions = {versions!r}
if suite not in versions:
    sys.exit(f"E: {{suite}}: unsatisfiable dependencies")
root = target
(root / "usr/lib/rabbitmq/lib" / f"rabbitmq_server-{{versions[suite]}}").mkdir(parents=True)
(root / "usr/lib/rabbitmq/bin").mkdir(parents=True)
(root / "usr/lib/rabbitmq/bin/rabbitmq-server").write_text("#!/bin/sh\\n")
(root / "etc/ssl/certs").mkdir(parents=True)
(root / "etc/ssl/certs/ca-certificates.crt").write_text("")
"""


@pytest.fixture
def fake_mmdebstrap(tmp_path, monkeypatch):
    """An mmdebstrap on PATH that lays out a root with the given version per suite (other suites fail)."""

    def install(versions: dict[str, str]) -> None:
        folder = tmp_path / "bin"
        folder.mkdir(exist_ok=True)
        script = folder / "mmdebstrap"
        script.write_text(FAKE_MMDEBSTRAP.format(python=sys.executable, versions=versions))
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
        monkeypatch.setattr(os, "geteuid", lambda: 0)

    return install


def test_a_build_falls_back_to_the_next_suite_and_leaves_no_partial_root(tmp_path, fake_mmdebstrap, capsys):
    fake_mmdebstrap({"sid": f"{rabbitmq_root.RELEASE}.9"})
    root = tmp_path / "root"
    assert rabbitmq_root.build(root, ("forky", "sid")) == f"{rabbitmq_root.RELEASE}.9"
    assert rabbitmq_root.version(root) == f"{rabbitmq_root.RELEASE}.9"
    assert "localhost" in (root / "etc" / "hosts").read_text()  # Erlang's distribution resolves it
    assert not root.with_name("root.partial").exists()
    output = capsys.readouterr().out
    assert "forky: mmdebstrap failed" in output and f"RabbitMQ {rabbitmq_root.RELEASE}.9 in {root}" in output


def test_a_build_where_no_suite_has_the_release_names_each_and_keeps_the_old_root(tmp_path, fake_mmdebstrap):
    fake_mmdebstrap({"forky": "4.4.0"})
    root = fake_root(tmp_path, f"{rabbitmq_root.RELEASE}.1")
    with pytest.raises(rabbitmq_root.RootError) as caught:
        rabbitmq_root.build(root, ("forky", "sid"))
    message = str(caught.value)
    assert "forky: " in message and f"RabbitMQ 4.4.0 is installed there, {rabbitmq_root.RELEASE}.x is wanted" in message
    assert "sid: mmdebstrap failed" in message
    assert rabbitmq_root.version(root) == f"{rabbitmq_root.RELEASE}.1"  # the root that worked is still there
    assert not root.with_name(root.name + ".partial").exists()
