"""Foundation stack: resources every other stack of the project builds on.

For now this is only the project's customer-managed KMS key, which encrypts the data and model
buckets, SageMaker volumes and logs that later stacks add. The key is retained on stack deletion
so that data encrypted with it stays readable.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from constructs import Construct


class FoundationStack(cdk.Stack):
    """Shared, long-lived resources: the customer-managed data key (``self.key``)."""

    def __init__(self, scope: Construct, construct_id: str, *, project_name: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.project_name = project_name

        self.key = kms.Key(
            self,
            "DataKey",
            alias=f"alias/{project_name}-data",
            description=f"Customer-managed key for {project_name} data, models and SageMaker volumes",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
