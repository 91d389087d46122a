"""Secrets the program generates and keeps in AWS Secrets Manager (never in images or plain env)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from .tagging import name_tags


class StoredSecret:
    """A Secrets Manager secret holding ``value``; containers get it through ECS ``secrets``."""

    def __init__(
        self,
        name: str,
        value: pulumi.Input[str],
        description: str,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions,
    ):
        self.secret = aws.secretsmanager.Secret(
            name,
            description=description,
            tags=name_tags(tags, name),
            opts=opts,
        )
        aws.secretsmanager.SecretVersion(
            name,
            secret_id=self.secret.id,
            secret_string=pulumi.Output.secret(value),
            opts=opts,
        )
        self.arn: pulumi.Output[str] = self.secret.arn

    def key(self, json_key: str) -> pulumi.Output[str]:
        """ECS ``valueFrom`` for one key of a JSON secret: ``<arn>:<key>::``."""
        return self.arn.apply(lambda arn: f"{arn}:{json_key}::")
