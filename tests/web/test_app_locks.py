"""The apps' lock files: what each image installs (``pip install --require-hashes --no-deps -r``).

Each app folder has ``requirements.in`` (ranges) and ``requirements.txt`` (compiled
by pip-compile with hashes). With ``--no-deps`` nothing is resolved at build time,
so the lock must hold every distribution the app imports, each pinned and hashed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from devtools.procs import REPO_ROOT, child_env

APPS_DIR = REPO_ROOT / "apps"
APPS = sorted(path.parent.name for path in APPS_DIR.glob("*/__main__.py"))
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def ranges(path) -> dict[str, Requirement]:
    """The requirements of a ``.in`` file by canonical name."""
    found = {}
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            requirement = Requirement(text)
            found[canonicalize_name(requirement.name)] = requirement
    return found


def lock(app: str) -> dict[str, tuple[Version, int]]:
    """``{name: (version, number of hashes)}`` of ``apps/<app>/requirements.txt``."""
    entries: dict[str, tuple[Version, int]] = {}
    name = None
    for line in (APPS_DIR / app / "requirements.txt").read_text().splitlines():
        pinned = PIN.match(line)
        if pinned:
            name = canonicalize_name(pinned.group(1))
            entries[name] = (Version(pinned.group(2)), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = entries[name]
            entries[name] = (version, hashes + 1)
    return entries


@pytest.mark.parametrize("app", APPS)
def test_the_lock_pins_every_range_with_hashes(app):
    wanted = ranges(APPS_DIR / app / "requirements.in")
    locked = lock(app)
    assert wanted and locked
    for name, requirement in wanted.items():
        assert name in locked, f"{app}: {name} is in requirements.in but not in the lock: run pip-compile"
        assert locked[name][0] in requirement.specifier, f"{app}: {name}=={locked[name][0]} outside {requirement}"
    for name, (version, hashes) in locked.items():
        assert hashes > 0, f"{app}: {name}=={version} has no --hash"
    text = (APPS_DIR / app / "requirements.txt").read_text()
    # Nothing about this machine or an index in a committed lock.
    assert not re.search(r"://|^\s*-(i|-index-url|-extra-index-url|f|-find-links)\b|/(home|tmp|work|opt)/", text, re.M)


def test_gunicorn_is_23_or_newer_and_shared_packages_have_one_version():
    versions: dict[str, set[Version]] = {}
    for app in APPS:
        for name, (version, _) in lock(app).items():
            versions.setdefault(name, set()).add(version)
    assert min(versions["gunicorn"]) >= Version("23")
    assert {name: found for name, found in versions.items() if len(found) > 1} == {}


def test_apps_requirements_in_is_the_union_of_the_apps_ranges():
    union = {}
    for app in APPS:
        union.update({name: str(req) for name, req in ranges(APPS_DIR / app / "requirements.in").items()})
    assert {name: str(req) for name, req in ranges(APPS_DIR / "requirements.in").items()} == union


# In a fresh interpreter per app: the distributions that importing the app loads (not what site.py
# loaded at start-up, such as setuptools' _distutils_hack from a .pth file).
PROBE = """
import importlib, json, sys
from importlib.metadata import packages_distributions
before = set(sys.modules)
importlib.import_module(f"apps.{sys.argv[1]}.__main__")
owners = packages_distributions()
print(json.dumps(sorted({d for m in set(sys.modules) - before for d in owners.get(m.split(".")[0], [])})))
"""


def test_each_lock_holds_what_its_app_imports():
    probes = {
        app: subprocess.Popen(
            [sys.executable, "-c", PROBE, app], env=child_env(), cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
        )
        for app in APPS
    }
    for app, probe in probes.items():
        out, _ = probe.communicate(timeout=60)
        assert probe.returncode == 0, app
        imported = {canonicalize_name(name) for name in json.loads(out)}
        missing = imported - set(lock(app)) - {"seaport"}  # seaport: this checkout, installed editable
        assert missing == set(), f"{app} imports {sorted(missing)}, which its image would not have"
