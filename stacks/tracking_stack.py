"""Tracking stack: a SageMaker-managed MLflow tracking server, reachable from Studio through the VPC.

Built only when ``tracking.mlflow_server`` is on (a tracking server is billed per hour while it exists).

* ``AWS::SageMaker::MlflowTrackingServer`` named ``<prefix>-mlflow``; its artifact store is
  ``s3://<artifacts>/mlflow/``, encrypted by the bucket's default (the project key).
* ``mlflow_role``: the role the server assumes for that store — read, write and list under ``mlflow/``
  and the key, nothing else. SageMaker runs the server in a VPC it manages, so the data perimeter
  exempts this role (``stacks.data_perimeter.service_side_role_names``).
* The ``aws.sagemaker.<region>.experiments`` interface endpoint in the project VPC, so Studio (VPC-only)
  and the ops functions reach the server's API (``https://<region>.experiments.sagemaker.<suffix>``)
  without internet.
* The Studio execution role may open the MLflow UI (presigned URL) and read and write experiments on this
  server only. Who logs the pipeline's executions: the ``publish-model-metrics`` function
  (:mod:`stacks.model_metrics`), because the pipeline's jobs run network-isolated and cannot call it.
"""

from __future__ import annotations

from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from settings import TrackingSettings
from stacks.data_perimeter import interface_endpoint_statements
from stacks.iam_conditions import SAGEMAKER_SERVICE, service_principal
from stacks.network_stack import NetworkStack
from stacks.platform import Platform
from stacks.roles import LeastPrivilegePolicy, LeastPrivilegeRole

# What logging an execution needs (lambdas/publish_model_metrics/mlflow_log.py calls exactly these).
MLFLOW_LOG_ACTIONS = (
    "sagemaker-mlflow:CreateExperiment",
    "sagemaker-mlflow:GetExperimentByName",
    "sagemaker-mlflow:CreateRun",
    "sagemaker-mlflow:SearchRuns",
    "sagemaker-mlflow:LogBatch",
    "sagemaker-mlflow:UpdateRun",
)
# Data scientists in Studio: the UI and the tracking API on this server (not delete of others' runs).
MLFLOW_STUDIO_ACTIONS = (
    "sagemaker-mlflow:AccessUI",
    "sagemaker-mlflow:Get*",
    "sagemaker-mlflow:Search*",
    "sagemaker-mlflow:List*",
    "sagemaker-mlflow:Create*",
    "sagemaker-mlflow:Log*",
    "sagemaker-mlflow:Set*",
    "sagemaker-mlflow:UpdateRun",
)
ARTIFACT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")
KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")


class TrackingStack(cdk.Stack):
    """``server`` (the tracking server), ``role``, ``endpoint`` and ``studio_access``; ``server_arn``."""

    def __init__(
        self, scope: Construct, construct_id: str, *, platform: Platform, tracking: TrackingSettings, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.platform, self.names = platform, platform.names
        self.role = self._create_role()
        self.server = self._create_server(tracking)
        self.server_arn: str = self.server.attr_tracking_server_arn
        self.endpoint = self._create_endpoint()
        self.studio_access = self._allow_studio()
        cdk.CfnOutput(self, "TrackingServerArn", value=self.server_arn, description="MLflow tracking URI")

    def _create_role(self) -> LeastPrivilegeRole:
        names, stack = self.names, cdk.Stack.of(self)
        role = LeastPrivilegeRole(
            self,
            "ServerRole",
            role_name=names.mlflow_role,
            assumed_by=service_principal(SAGEMAKER_SERVICE, stack.account),
            description="MLflow tracking server: its artifact store under mlflow/ in the artifacts bucket",
        )
        bucket = f"arn:{stack.partition}:s3:::{names.artifacts_bucket}"
        role.allow(
            "ArtifactStore",
            ARTIFACT_ACTIONS,
            [f"{bucket}/{names.mlflow_prefix}*"],
            wildcard_reason="MLflow names artifact objects by experiment and run id under mlflow/",
        )
        role.allow(
            "ListArtifactStore",
            ["s3:ListBucket"],
            [bucket],
            conditions={"StringLike": {"s3:prefix": [f"{names.mlflow_prefix}*"]}},
        )
        role.allow("UseProjectKey", KEY_ACTIONS, [self.platform.key.key_arn])
        role.acknowledge_wildcards()
        return role

    def _create_server(self, tracking: TrackingSettings) -> sagemaker.CfnMlflowTrackingServer:
        names = self.names
        server = sagemaker.CfnMlflowTrackingServer(
            self,
            "Server",
            tracking_server_name=names.mlflow_tracking_server,
            artifact_store_uri=f"s3://{names.artifacts_bucket}/{names.mlflow_prefix}",
            role_arn=self.role.role_arn,
            tracking_server_size=tracking.server_size,
            mlflow_version=tracking.mlflow_version,
            # The project's registry is the SageMaker model package group; MLflow models stay in MLflow.
            automatic_model_registration=False,
            weekly_maintenance_window_start=tracking.weekly_maintenance_window_start,
        )
        server.node.add_dependency(self.role)
        return server

    def _create_endpoint(self) -> ec2.InterfaceVpcEndpoint:
        network = cast(NetworkStack, self.platform.stacks["Network"])
        endpoint = ec2.InterfaceVpcEndpoint(
            self,
            "ExperimentsEndpoint",
            vpc=network.vpc,
            service=ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_EXPERIMENTS,
            subnets=network.subnet_selection,
            security_groups=[network.endpoint_security_group],
            open=False,
            private_dns_enabled=True,
        )
        for statement in interface_endpoint_statements(self.account, ecr=False):
            endpoint.add_to_policy(statement)
        return endpoint

    def _allow_studio(self) -> LeastPrivilegePolicy:
        policy = LeastPrivilegePolicy(
            self, "StudioMlflowAccess", description="Studio role: the MLflow server"
        )
        policy.allow(
            "OpenMlflowUi",
            ["sagemaker:CreatePresignedMlflowTrackingServerUrl", "sagemaker:DescribeMlflowTrackingServer"],
            [self.server_arn],
        )
        policy.allow(
            "TrackExperiments",
            MLFLOW_STUDIO_ACTIONS,
            [self.server_arn],
            wildcard_reason="the MLflow API's read, create and log actions, on the project's server only",
        )
        policy.acknowledge_wildcards()
        studio_role = iam.Role.from_role_name(self, "StudioRole", self.names.studio_role)
        policy.policy.attach_to_role(studio_role)
        return policy
