"""Secrets the program generates and keeps in AWS Secrets Manager (never in images or plain env)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from .tagging import name_tags


class StoredSecret:
    """A Secrets Manager secret holding ``value``; containers get it through ECS ``secrets``.

    ``arn`` resolves only once the secret *has its value* (the ``SecretVersion`` exists), so a launch
    template or a task that reads the secret never starts before there is something to read.
    """

    def __init__(
        self,
        name: str,
        value: pulumi.Input[str],
        description: str,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions,
    ):
        self.secret = aws.secretsmanager.Secret(name, description=description, tags=name_tags(tags, name), opts=opts)
        self.version = aws.secretsmanager.SecretVersion(
            name, secret_id=self.secret.id, secret_string=pulumi.Output.secret(value), opts=opts
        )
        self.arn: pulumi.Output[str] = pulumi.Output.all(self.secret.arn, self.version.id).apply(lambda v: v[0])

    def key(self, json_key: str) -> pulumi.Output[str]:
        """ECS ``valueFrom`` for one key of a JSON secret: ``<arn>:<key>::``."""
        return self.arn.apply(lambda arn: f"{arn}:{json_key}::")
