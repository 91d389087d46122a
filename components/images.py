"""ContainerImage: an ECR repository and an image built from source and pushed to it."""

import json
import re
from enum import StrEnum
from typing import Any, Required, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from . import outputs
from . import validation as check
from .args import Problem, Problems, raise_if, with_defaults
from .tagging import name_tags

DIGEST_REFERENCE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


class Platform(StrEnum):
    AMD64 = "linux/amd64"
    """x86_64 instances (t3, m6i, ...)."""
    ARM64 = "linux/arm64"
    """Graviton instances (t4g, m7g, ...)."""


DEFAULTS: dict[str, Any] = {"platform": Platform.AMD64, "retain_count": 10, "force_delete": False, "tags": {}}


class ContainerImageArgs(TypedDict, total=False):
    context: Required[str]
    """Build context directory (``apps/`` for seaport's images). Required."""
    dockerfile: str
    """Dockerfile path (e.g. ``apps/Dockerfile``). Default: ``<context>/Dockerfile``."""
    target: str
    """Build stage to build (one Dockerfile, a target per image), e.g. ``portal``. Default: the last stage."""
    platform: Platform
    """``linux/amd64`` or ``linux/arm64``: what the cluster's instances run, whatever the build machine is. Default
    ``"linux/amd64"``."""
    retain_count: int
    """Earlier images the repository keeps besides the deployed one (which never expires); older ones expire.
    Default ``10``."""
    force_delete: bool
    """Let ``pulumi destroy`` delete the repository while it holds images (dev stacks). Default ``False``."""
    tags: dict[str, str]
    """Tags added to the repository. Default ``{}``."""


class ContainerImage(pulumi.ComponentResource):
    """An image built by the program and pushed to its own private ECR repository.

    The repository scans every push for vulnerabilities, encrypts at rest and
    expires earlier images beyond the newest ``retain_count``, never the one the
    stack's tag points at (the deployed image) nor the one before it (what a
    circuit-breaker rollback starts again). The image is built for
    ``platform`` and pushed with a short-lived ECR token (kept secret in the
    state). Consumers get ``repo_digest`` (``repo@sha256:...``), never a tag: a
    changed image changes the task definition and rolls the service, an
    unchanged one changes nothing.
    """

    repository_url: pulumi.Output[str]
    """URL of the ECR repository (no tag)."""
    repository_name: pulumi.Output[str]
    """Name of the ECR repository."""
    repo_digest: pulumi.Output[str]
    """The pushed image by digest, ``<repository url>@sha256:<digest>``: what task definitions use."""

    def __init__(self, name: str, args: ContainerImageArgs, opts: pulumi.ResourceOptions | None = None):
        raise_if(problems(args))  # before anything is registered
        super().__init__("seaport:index:ContainerImage", name, None, opts)
        a = with_defaults(args, DEFAULTS)
        tags = a["tags"]
        child = pulumi.ResourceOptions(parent=self)

        repository = aws.ecr.Repository(
            name,
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
            # Tags move (each deploy pushes the stack's tag); deployments pin digests, which never move.
            image_tag_mutability="MUTABLE",
            force_delete=a["force_delete"],
            tags=name_tags(tags, name),
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            name,
            repository=repository.name,
            policy=json.dumps(lifecycle_policy(a["retain_count"])),
            opts=child,
        )
        token = aws.ecr.get_authorization_token_output(
            registry_id=repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        image = docker.Image(
            name,
            image_name=repository.repository_url.apply(lambda url: f"{url}:{pulumi.get_stack()}"),
            build=docker.DockerBuildArgs(
                context=a["context"],
                dockerfile=a.get("dockerfile"),
                target=a.get("target"),
                platform=str(a["platform"]),
                builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
                # Reuse the layers of the last push: dependency layers rebuild only when requirements change.
                args={"BUILDKIT_INLINE_CACHE": "1"},
                cache_from=docker.CacheFromArgs(
                    images=[repository.repository_url.apply(lambda url: f"{url}:{pulumi.get_stack()}")]
                ),
            ),
            registry=docker.RegistryArgs(
                server=repository.repository_url,
                username=token.user_name,
                password=pulumi.Output.secret(token.password),
            ),
            opts=child,
        )

        outputs.register(
            self,
            repository_url=repository.repository_url,
            repository_name=repository.name,
            repo_digest=image.repo_digest,
        )


def lifecycle_policy(retain_count: int) -> dict:
    """ECR lifecycle policy: expire untagged images beyond the newest ``retain_count``.

    Every deployment pushes the stack's tag (``:<stack>``) to the new image, so the deployed image is the
    tagged one and earlier images are untagged, newest first. Only untagged images expire, so the image the
    current task definition runs is never touched, and the newest earlier ones, the images previous task
    definitions (and so a circuit-breaker rollback) use, are the last to go.
    """
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"expire earlier (untagged) images beyond the newest {retain_count}; "
                "the deployed image keeps the stack's tag and never expires",
                "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": retain_count},
                "action": {"type": "expire"},
            }
        ]
    }


def pinned_image(reference: str, opts: pulumi.InvokeOutputOptions | None = None) -> pulumi.Output[str]:
    """A third-party image by digest: ``name:tag`` resolved once per deployment to ``name:tag@sha256:...``.

    A reference that already carries a digest is returned as it is (to freeze it).
    """
    if DIGEST_REFERENCE.match(reference):
        return pulumi.Output.from_input(reference)
    digest = docker.get_registry_image_output(name=reference, opts=opts).sha256_digest
    return digest.apply(lambda d: f"{reference}@{d}")


def problems(args: ContainerImageArgs) -> list[Problem]:
    a = with_defaults(args, DEFAULTS)
    found = Problems()
    found.require(a, "context", why="(the directory the image is built from)")
    found.check("platform", a["platform"], check.one_of(a["platform"], Platform))
    found.check("retain_count", a["retain_count"], check.int_between(a["retain_count"], 1, 1000))
    found.check("tags", a["tags"], check.tags(a["tags"]))
    return found
