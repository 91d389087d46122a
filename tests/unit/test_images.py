"""ContainerImage: ECR repository settings and the image pushed by digest."""

import json

import pytest
from seaport import ContainerImage, InvalidArgument
from seaport.images import pinned_image
from seaport.tools.testing import run


def image_plan(**args):
    return run(lambda: ContainerImage("app", {"context": "apps", "dockerfile": "apps/portal/Dockerfile", **args}))


@pytest.fixture(scope="module")
def plan():
    return image_plan(retain_count=5, platform="linux/arm64")


def test_repository_scans_on_push_and_encrypts(plan):
    repository = plan.one("aws:ecr/repository:Repository")["inputs"]
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository["encryptionConfigurations"] == [{"encryptionType": "AES256"}]
    assert repository["forceDelete"] is False


def test_lifecycle_keeps_the_newest_images(plan):
    policy = json.loads(plan.one("aws:ecr/lifecyclePolicy:LifecyclePolicy")["inputs"]["policy"])
    (rule,) = policy["rules"]
    assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5}
    assert rule["action"] == {"type": "expire"}


def test_force_delete_switch():
    assert image_plan(force_delete=True).one("aws:ecr/repository:Repository")["inputs"]["forceDelete"] is True


def test_image_is_built_for_the_platform_and_pushed_with_a_secret_token(plan):
    image = plan.one("docker:index/image:Image")["inputs"]
    repository = plan.one("aws:ecr/repository:Repository")["outputs"]
    assert image["build"]["platform"] == "linux/arm64"
    assert (image["build"]["context"], image["build"]["dockerfile"]) == ("apps", "apps/portal/Dockerfile")
    assert image["imageName"] == f"{repository['repositoryUrl']}:test"
    # The password is secret, so the engine receives the whole registry block as a secret.
    registry = image["registry"]
    assert registry == "[secret]" or registry["password"] == "[secret]"


def test_consumers_get_a_digest_never_a_tag(plan):
    outputs = plan.one("seaport:index:ContainerImage")["outputs"]
    repository = plan.one("aws:ecr/repository:Repository")["outputs"]
    assert outputs["repo_digest"].startswith(repository["repositoryUrl"] + "@sha256:")
    assert len(outputs["repo_digest"].split("@sha256:")[1]) == 64


def test_pinned_third_party_images_resolve_to_digests():
    seen = {}

    def program():
        pinned_image("rabbitmq:4.1.4-management").apply(lambda ref: seen.setdefault("tag", ref))
        frozen = "rabbitmq:4.1.4-management@sha256:" + "c" * 64
        pinned_image(frozen).apply(lambda ref: seen.setdefault("frozen", ref))

    run(program)
    assert seen["tag"].startswith("rabbitmq:4.1.4-management@sha256:")
    assert seen["frozen"] == "rabbitmq:4.1.4-management@sha256:" + "c" * 64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"platform": "linux/386"}, "platform='linux/386' must be one of linux/amd64, linux/arm64"),
        ({"retain_count": 0}, "retain_count=0 must be between 1 and 1000"),
        ({"context": ""}, "context is required"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(args, message):
    seen = {}

    def program():
        try:
            ContainerImage("app", {"context": "apps", **args})
        except InvalidArgument as error:
            seen["error"] = str(error)

    plan = run(program)
    assert message in seen["error"]
    assert plan.resources == []
