"""EC2 instances: hardened launch templates and instance roles, shared by the cluster and the Consul servers."""

from __future__ import annotations

import base64

import pulumi
import pulumi_aws as aws

from . import iam
from .tagging import name_tags


def instance_role(
    name: str, managed_policies: list[str], tags: dict[str, str], opts: pulumi.ResourceOptions
) -> tuple[aws.iam.Role, aws.iam.InstanceProfile]:
    """An EC2 role with the given managed policies, and its instance profile."""
    role = aws.iam.Role(
        name,
        assume_role_policy=iam.assume_role_policy("ec2.amazonaws.com"),
        description=f"EC2 instances of {name}",
        tags=tags,
        opts=opts,
    )
    for index, policy in enumerate(managed_policies):
        suffix = policy.rsplit("/", 1)[-1].lower()
        aws.iam.RolePolicyAttachment(f"{name}-{suffix or index}", role=role.name, policy_arn=policy, opts=opts)
    profile = aws.iam.InstanceProfile(name, role=role.name, tags=tags, opts=opts)
    return role, profile


def hardened_launch_template(
    name: str,
    *,
    image_id: pulumi.Input[str],
    instance_type: str,
    profile_arn: pulumi.Input[str],
    security_group_id: pulumi.Input[str],
    user_data: pulumi.Input[str],
    volume_gib: int,
    public_ip: pulumi.Input[bool],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.ec2.LaunchTemplate:
    """A launch template with IMDSv2 only, an encrypted gp3 root volume, no key pair and no inline ingress.

    ``user_data`` is the plain script; it is base64-encoded here.
    """
    return aws.ec2.LaunchTemplate(
        name,
        image_id=image_id,
        instance_type=instance_type,
        iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile_arn),
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled",
            http_tokens="required",  # IMDSv2 only
            http_put_response_hop_limit=1,  # bridge-mode containers are a hop away: no instance role for them
            instance_metadata_tags="disabled",
        ),
        block_device_mappings=[
            aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda",
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=volume_gib,
                    volume_type="gp3",
                    encrypted="true",
                    delete_on_termination="true",
                ),
            )
        ],
        network_interfaces=[
            aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                associate_public_ip_address=pulumi.Output.from_input(public_ip).apply(
                    lambda p: "true" if p else "false"
                ),
                security_groups=[security_group_id],
                delete_on_termination="true",
            )
        ],
        monitoring=aws.ec2.LaunchTemplateMonitoringArgs(enabled=True),
        user_data=pulumi.Output.from_input(user_data).apply(lambda s: base64.b64encode(s.encode()).decode()),
        tag_specifications=[
            aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=name_tags(tags, name))
            for kind in ("instance", "volume")
        ],
        update_default_version=True,
        tags=name_tags(tags, name),
        opts=opts,
    )
