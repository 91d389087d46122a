"""ContainerImage: ECR repository settings and the image pushed by digest."""

import json

import pytest

from seaport import ContainerImage
from seaport.images import pinned_image
from seaport.tools.testing import run
from tests.unit.refusals import assert_refused, refused_paths


def image_plan(**args):
    return run(lambda: ContainerImage("app", {"context": "apps", "dockerfile": "apps/Dockerfile", **args}))


@pytest.fixture(scope="module")
def plan():
    return image_plan(retain_count=5, platform="linux/arm64", target="portal", tags={"team": "web"})


def test_repository_scans_on_push_and_encrypts(plan):
    repository = plan.one("aws:ecr/repository:Repository")["inputs"]
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository["encryptionConfigurations"] == [{"encryptionType": "AES256"}]
    assert repository["forceDelete"] is False
    assert repository["tags"] == {"team": "web", "Name": "app"}


def test_lifecycle_never_expires_the_deployed_image_nor_the_rollback_target(plan):
    """The deployed image carries the stack's tag; a rollback needs the newest untagged one. Only untagged
    images beyond the newest retain_count expire (a rule on "any" could expire both)."""
    lifecycle = plan.one("aws:ecr/lifecyclePolicy:LifecyclePolicy")["inputs"]
    assert lifecycle["repository"] == plan.one("aws:ecr/repository:Repository")["outputs"]["name"]
    (rule,) = json.loads(lifecycle["policy"])["rules"]
    assert rule["selection"] == {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 5}
    assert rule["action"] == {"type": "expire"}
    pushed = plan.one("docker:index/image:Image")["inputs"]["imageName"]
    assert pushed.endswith(":test"), "each deployment moves the stack's tag to the new image"


def test_defaults_keep_ten_images_for_amd64():
    plan = run(lambda: ContainerImage("app", {"context": "apps"}))
    (rule,) = json.loads(plan.one("aws:ecr/lifecyclePolicy:LifecyclePolicy")["inputs"]["policy"])["rules"]
    assert rule["selection"]["countNumber"] == 10
    assert plan.one("docker:index/image:Image")["inputs"]["build"]["platform"] == "linux/amd64"


def test_force_delete_switch():
    assert image_plan(force_delete=True).one("aws:ecr/repository:Repository")["inputs"]["forceDelete"] is True


def test_image_is_built_for_the_platform_and_pushed_with_a_secret_token(plan):
    image = plan.one("docker:index/image:Image")["inputs"]
    repository = plan.one("aws:ecr/repository:Repository")["outputs"]
    assert image["build"]["platform"] == "linux/arm64"
    assert (image["build"]["context"], image["build"]["dockerfile"]) == ("apps", "apps/Dockerfile")
    assert image["build"]["target"] == "portal"
    assert image["imageName"] == f"{repository['repositoryUrl']}:test"
    # The password is secret, so the engine receives the whole registry block as a secret.
    registry = image["registry"]
    assert registry == "[secret]" or registry["password"] == "[secret]"


def test_builds_reuse_the_layers_of_the_last_push(plan):
    build = plan.one("docker:index/image:Image")["inputs"]["build"]
    repository = plan.one("aws:ecr/repository:Repository")["outputs"]
    assert build["args"] == {"BUILDKIT_INLINE_CACHE": "1"}
    assert build["cacheFrom"] == {"images": [f"{repository['repositoryUrl']}:test"]}


def test_consumers_get_a_digest_never_a_tag(plan):
    outputs = plan.one("seaport:index:ContainerImage")["outputs"]
    repository = plan.one("aws:ecr/repository:Repository")["outputs"]
    assert outputs["repo_digest"].startswith(repository["repositoryUrl"] + "@sha256:")
    assert len(outputs["repo_digest"].split("@sha256:")[1]) == 64
    assert (outputs["repository_url"], outputs["repository_name"]) == (
        repository["repositoryUrl"],
        repository["name"],
    )


def test_pinned_third_party_images_resolve_to_digests():
    seen = {}

    def program():
        pinned_image("rabbitmq:4.1.4-management").apply(lambda ref: seen.setdefault("tag", ref))
        frozen = "rabbitmq:4.1.4-management@sha256:" + "c" * 64
        pinned_image(frozen).apply(lambda ref: seen.setdefault("frozen", ref))

    run(program)
    assert seen["tag"].startswith("rabbitmq:4.1.4-management@sha256:")
    assert len(seen["tag"].split("@sha256:")[1]) == 64
    assert seen["frozen"] == "rabbitmq:4.1.4-management@sha256:" + "c" * 64


@pytest.mark.parametrize(
    ("args", "path", "message"),
    [
        ({"platform": "linux/386"}, "platform", "platform='linux/386' must be one of linux/amd64, linux/arm64"),
        ({"retain_count": 0}, "retain_count", "retain_count=0 must be between 1 and 1000"),
        ({"context": None}, "context", "context is required"),
        # An empty build context is no directory either (the old API refused it too).
        ({"context": ""}, "context", "context is required"),
        ({"tags": {"aws:x": "y"}}, "tags", "has tag key 'aws:x'"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(args, path, message):
    assert_refused(lambda: ContainerImage("app", {"context": "apps", **args}), path, message)


def test_every_bad_argument_is_reported_at_once():
    args = {"platform": "linux/386", "retain_count": 0, "tags": {"aws:x": "y"}}
    assert refused_paths(lambda: ContainerImage("app", args)) == ["context", "platform", "retain_count", "tags"]
