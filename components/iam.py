"""IAM policy documents built as Python data (never hand-written JSON strings)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi

# AWS managed policies the container instances need (commercial partition).
ECS_INSTANCE_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
SSM_INSTANCE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


def assume_role_policy(service: str) -> str:
    """Trust policy letting one AWS service (e.g. ``ecs-tasks.amazonaws.com``) assume the role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def statement(actions: Sequence[str], resources: Sequence[Any], **extra: Any) -> dict[str, Any]:
    """One Allow statement; ``resources`` may hold Outputs (resolved by ``policy_document``)."""
    return {"Effect": "Allow", "Action": list(actions), "Resource": list(resources), **extra}


def json_document(statements: Sequence[dict[str, Any]]) -> str:
    """A policy JSON string from plain statements."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def policy_document(statements: Sequence[dict[str, Any]]) -> pulumi.Output[str]:
    """A policy JSON string, resolving any Outputs inside the statements."""
    return pulumi.Output.from_input(list(statements)).apply(json_document)
