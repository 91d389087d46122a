"""ContainerImage: an ECR repository and an image built from source and pushed to it."""

import json
import re
from typing import Required, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from . import validation as check
from .tagging import name_tags

DIGEST_REFERENCE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


class ContainerImageArgs(TypedDict, total=False):
    context: Required[str]
    """Build context directory (``apps/`` for seaport's images). Required."""
    dockerfile: str
    """Dockerfile path (e.g. ``apps/portal/Dockerfile``). Default ``<context>/Dockerfile``."""
    platform: str
    """``linux/amd64`` or ``linux/arm64``: what the cluster's instances run, whatever the build machine is. Default
    ``linux/amd64``."""
    retain_count: int
    """Images the repository keeps; older ones expire. Default ``10``."""
    force_delete: bool
    """Let ``pulumi destroy`` delete the repository while it holds images (dev stacks). Default ``False``."""
    tags: dict[str, str]
    """Tags added to the repository. Default ``{}``."""


class ContainerImage(pulumi.ComponentResource):
    """An image built by the program and pushed to its own private ECR repository.

    The repository scans every push for vulnerabilities, encrypts at rest and
    expires all but the newest ``retain_count`` images. The image is built for
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
        validate_image_args(args)  # before anything is registered
        super().__init__("seaport:index:ContainerImage", name, None, opts)
        tags = args.get("tags", {})
        child = pulumi.ResourceOptions(parent=self)

        repository = aws.ecr.Repository(
            name,
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
            # Tags move (each deploy pushes the stack's tag); deployments pin digests, which never move.
            image_tag_mutability="MUTABLE",
            force_delete=args.get("force_delete", False),
            tags=name_tags(tags, name),
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            name,
            repository=repository.name,
            policy=json.dumps(lifecycle_policy(args.get("retain_count", 10))),
            opts=child,
        )
        token = aws.ecr.get_authorization_token_output(
            registry_id=repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        image = docker.Image(
            name,
            image_name=repository.repository_url.apply(lambda url: f"{url}:{pulumi.get_stack()}"),
            build=docker.DockerBuildArgs(
                context=args["context"],
                dockerfile=args.get("dockerfile"),
                platform=args.get("platform", "linux/amd64"),
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

        self.repository_url = repository.repository_url
        self.repository_name = repository.name
        self.repo_digest = image.repo_digest
        self.register_outputs(
            {
                "repository_url": self.repository_url,
                "repository_name": self.repository_name,
                "repo_digest": self.repo_digest,
            }
        )


def lifecycle_policy(retain_count: int) -> dict:
    """ECR lifecycle policy that expires all but the newest ``retain_count`` images."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"keep the newest {retain_count} images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": retain_count},
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


def validate_image_args(args: ContainerImageArgs) -> None:
    """Raise InvalidArgument naming the first bad argument."""
    if not args.get("context"):
        raise check.InvalidArgument("context is required: the directory the image is built from")
    platform = args.get("platform", "linux/amd64")
    check.require(check.one_of(platform, check.PLATFORMS), "platform", platform)
    retain = args.get("retain_count", 10)
    check.require(check.int_between(retain, 1, 1000), "retain_count", retain)
    check.require(check.tags(args.get("tags", {})), "tags", args.get("tags", {}))
