"""ML stack: the model package group, the container code, and the SageMaker pipeline itself.

The pipeline definition is rendered at synth time by the same `render_definition()` the local runner
executes, from a `PipelineConfig` built out of the settings and the platform's deterministic names. The
container scripts are packed once into the deterministic source bundle; its content version names the
code prefix `s3://<artifacts>/code/<version>/` that the definition refers to (`sourcedir.tar.gz` for
script-mode training, `src/` unpacked for processing jobs). One BucketDeployment puts the code, the
definition JSON (with the subnet and security-group ids resolved at deploy time) and the champion
placeholder into the artifacts bucket; `AWS::SageMaker::Pipeline` reads the definition from there.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from pipeline_steps.code import build_source_bundle, code_uri_for
from pipeline_steps.config import PipelineConfig
from pipeline_steps.monitoring_names import GROUND_TRUTH_PLACEHOLDER, GROUND_TRUTH_PLACEHOLDER_TEXT
from pipeline_steps.render import render_definition
from settings import PipelineSettings, ResourceNames
from stacks.batch_pipeline import BatchPipeline, batch_pipeline_config
from stacks.job_image import CONTAINERS_DIR, job_image_uri
from stacks.monitoring_pipeline import MonitoringPipeline, monitoring_pipeline_config
from stacks.nag import NIST_R5, acknowledge, skip_checkov
from stacks.platform import Platform

CHAMPION_PLACEHOLDER = "NO_CHAMPION_YET.txt"  # same name as local_runner.champion.PLACEHOLDER
GROUND_TRUTH_PLACEHOLDER_KEY = ResourceNames.ground_truth_prefix + GROUND_TRUTH_PLACEHOLDER


def pipeline_config(
    platform: Platform, pipeline: PipelineSettings, code_version: str, image_uri: str
) -> PipelineConfig:
    """The definition's inputs on AWS: deterministic names, the job image, the key, the job network, the
    settings models as they are, and a quality gate fixed at deploy time (thresholds, champion and approval
    status are literals in the definition, not parameters a StartPipelineExecution caller could loosen)."""
    names, settings = platform.names, platform.settings
    return PipelineConfig(
        pipeline_name=names.pipeline,
        region=settings.aws.region,
        role_arn=f"arn:aws:iam::{settings.aws.account}:role/{names.job_role}",
        artifact_bucket=names.artifacts_bucket,
        data_uri=f"s3://{names.data_bucket}/{names.raw_data_prefix}",
        code_uri=code_uri_for(names.artifacts_bucket, code_version),
        image_uri=image_uri,
        model_package_group_name=names.model_package_group,
        pipeline=pipeline,
        serving=settings.serving,
        monitoring=settings.monitoring,
        # The key ARN (a token resolved at deploy time): VolumeKmsKeyId wants a key id or ARN, not an alias.
        kms_key_arn=platform.key.key_arn,
        subnet_ids=tuple(platform.job_network.subnet_ids),
        security_group_ids=tuple(platform.job_network.security_group_ids),
        gate_overridable=False,
    )


class MlStack(cdk.Stack):
    """Model package group, code and pipeline definition in S3, and the pipeline (``self.pipeline``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: Platform,
        pipeline: PipelineSettings,
        build_dir: Path,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.platform = platform
        self.bundle = build_source_bundle(CONTAINERS_DIR, Path(build_dir) / "bundle")
        # One URI for every job, the registered packages and (through app.py) the Ops stack's deployments.
        self.job_image_uri, self.job_image = job_image_uri(self, pipeline)
        self.config = pipeline_config(platform, pipeline, self.bundle.version, self.job_image_uri)
        self.definition = render_definition(self.config)
        self.definition_key = self._definition_key()
        self.model_package_group = self._create_model_package_group()
        self.deployment = self._create_deployment(Path(build_dir) / "code")
        self.pipeline = self._create_pipeline()
        self.monitoring_pipeline = MonitoringPipeline(
            self,
            "MonitoringPipeline",
            platform=platform,
            config=monitoring_pipeline_config(platform, self.config),
        )
        self.batch_pipeline = BatchPipeline(
            self, "BatchPipeline", platform=platform, config=batch_pipeline_config(platform, self.config)
        )

    def _definition_key(self) -> str:
        """S3 key named after the definition as deployed: a new image or code version gives a new key.

        The rendered text holds tokens (image URI, security-group ids) whose placeholder names depend on
        construction order, not on their values; hashing the resolved form makes the key follow the values,
        so CloudFormation sees a changed location, and updates the pipeline, whenever the image changes.
        """
        resolved = json.dumps(self.resolve(json.loads(self.definition)), sort_keys=True)
        digest = hashlib.sha256(resolved.encode()).hexdigest()[:12]
        return f"pipelines/{self.config.pipeline_name}/definition-{digest}.json"

    def _create_model_package_group(self) -> sagemaker.CfnModelPackageGroup:
        return sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=self.config.model_package_group_name,
            model_package_group_description="Remaining-useful-life models of the turbofan pipeline",
        )

    def _code_folder(self, folder: Path) -> Path:
        """The bucket layout of the code: code/<version>/sourcedir.tar.gz and code/<version>/src/..."""
        prefix = folder / "code" / self.bundle.version
        (prefix / "src").mkdir(parents=True, exist_ok=True)
        (prefix / "sourcedir.tar.gz").write_bytes(self.bundle.tarball.read_bytes())
        with tarfile.open(self.bundle.tarball) as archive:
            archive.extractall(prefix / "src", filter="data")
        return folder

    def _create_deployment(self, folder: Path) -> s3deploy.BucketDeployment:
        # Referred to by its deterministic name, so the handler's grants name the bucket, not an export.
        artifacts = s3.Bucket.from_bucket_name(self, "ArtifactsBucket", self.platform.names.artifacts_bucket)
        log_group = logs.LogGroup(
            self,
            "DeploymentLogs",
            log_group_name=f"{self.platform.names.log_group_prefix}code-deployment",
            encryption_key=self.platform.key,
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self,
            "CodeDeploymentRole",
            role_name=self.platform.names.code_deployment_role,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="CDK BucketDeployment handler: uploads this code version and definition only",
        )
        deployment = s3deploy.BucketDeployment(
            self,
            "CodeAndDefinition",
            destination_bucket=artifacts,
            log_group=log_group,
            # CDK's own grants (read/write/delete on the whole bucket) are dropped; the policy below has
            # exactly what the handler's `aws s3 cp` of the source zips and `aws s3 sync` up need.
            role=role.without_policy_updates(),
            sources=[
                s3deploy.Source.asset(str(self._code_folder(folder))),
                # Tokens in the definition (subnet and security-group ids) are resolved at deploy time.
                s3deploy.Source.json_data(self.definition_key, json.loads(self.definition)),
                s3deploy.Source.data(
                    f"{self.platform.names.champion_prefix}{CHAMPION_PLACEHOLDER}",
                    "No model has been approved yet.\n",
                ),
                # The monitoring pipeline's label input may not be an empty prefix.
                s3deploy.Source.data(GROUND_TRUTH_PLACEHOLDER_KEY, GROUND_TRUTH_PLACEHOLDER_TEXT),
            ],
            prune=False,  # the champion prefix and earlier code versions are not the deployment's to delete
            retain_on_delete=True,
            server_side_encryption=s3deploy.ServerSideEncryption.AWS_KMS,
            server_side_encryption_aws_kms_key_id=self.platform.key.key_id,
            memory_limit=512,
        )
        policy = self._create_deployment_policy(role, deployment, log_group)
        deployment.node.add_dependency(policy)  # the upload starts only once its permissions exist
        self._acknowledge_deployment_handler()
        return deployment

    def _create_deployment_policy(
        self, role: iam.Role, deployment: s3deploy.BucketDeployment, log_group: logs.LogGroup
    ) -> iam.ManagedPolicy:
        """Read the staged source zips; write only this version's objects, encrypted with the project key."""
        names = self.platform.names
        artifacts = f"arn:aws:s3:::{names.artifacts_bucket}"
        # The source zips are the deployment's own assets (its AWS CLI layer's code is read by Lambda).
        zips = [c for c in deployment.node.children if isinstance(c, s3_assets.Asset)]
        policy = iam.ManagedPolicy(
            self,
            "CodeDeploymentAccess",
            statements=[
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[z.bucket.arn_for_objects(z.s3_object_key) for z in zips],
                ),
                # `aws s3 sync` lists the destination (the bucket root) to decide what to upload.
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[artifacts]),
                iam.PolicyStatement(
                    actions=["s3:PutObject"],
                    resources=[
                        f"{artifacts}/{names.code_prefix}{self.bundle.version}/*",
                        f"{artifacts}/{self.definition_key}",
                        f"{artifacts}/{names.champion_prefix}{CHAMPION_PLACEHOLDER}",
                        f"{artifacts}/{GROUND_TRUTH_PLACEHOLDER_KEY}",
                    ],
                ),
                # SSE-KMS uploads need GenerateDataKey; multipart uploads of larger files also Decrypt.
                iam.PolicyStatement(
                    actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[self.platform.key.key_arn]
                ),
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
                ),
            ],
        )
        policy.attach_to_role(role)
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "the handler uploads the files of one code version, whose names are not known to IAM; the "
            "wildcard stops at that version's prefix (the definition and placeholder keys are exact)",
            findings=[f"Resource::{artifacts}/{names.code_prefix}{self.bundle.version}/*"],
        )
        return policy

    def _acknowledge_deployment_handler(self) -> None:
        """The BucketDeployment handler is CDK's own singleton function; say why each finding is accepted."""
        matches = (c for c in self.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
        handler = cast(Construct, next(matches))
        # CDK gives the handler both a GetAtt of its role and an explicit DependsOn on it; cfn-lint W3005
        # flags the redundant DependsOn. Harmless, and not ours to change.
        function = cast(cdk.CfnResource, handler.node.default_child)
        function.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        for check, reason in (
            ("CKV_AWS_115", "runs only during deployments; a concurrency limit protects nothing"),
            ("CKV_AWS_116", "invoked synchronously by CloudFormation, which reports its failures"),
            ("CKV_AWS_117", "copies S3 objects during deployment; it holds no data and needs no VPC"),
            ("CKV_AWS_173", "its environment holds no secrets, only CDK's own settings"),
        ):
            skip_checkov(function, check, f"CDK's BucketDeployment handler {reason}")
        reason_runtime = "CDK's BucketDeployment handler: its runtime is pinned by aws-cdk-lib, not by us"
        acknowledge(handler, "AwsSolutions-L1", reason_runtime)
        for rule, reason in (
            ("LambdaConcurrency", "runs only during deployments; a concurrency limit protects nothing"),
            ("LambdaDLQ", "invoked synchronously by CloudFormation, which reports its failures"),
            ("LambdaInsideVPC", "copies S3 objects during deployment; it holds no data and needs no VPC"),
        ):
            acknowledge(handler, f"{NIST_R5}-{rule}", f"CDK's BucketDeployment handler {reason}")

    def _create_pipeline(self) -> sagemaker.CfnPipeline:
        artifacts = self.platform.names.artifacts_bucket
        # The pipeline role reads the definition object (CloudFormation hands SageMaker its location).
        read_definition = iam.ManagedPolicy(
            self,
            "ReadPipelineDefinition",
            statements=[
                iam.PolicyStatement(
                    actions=["s3:GetObject"], resources=[f"arn:aws:s3:::{artifacts}/{self.definition_key}"]
                ),
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[self.platform.key.key_arn]),
            ],
        )
        read_definition.attach_to_role(self.platform.pipeline_role)
        pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=self.config.pipeline_name,
            pipeline_description="Turbofan RUL: preprocess, baseline, tune, evaluate, gate, register",
            role_arn=self.platform.pipeline_role.role_arn,
            pipeline_definition={
                "PipelineDefinitionS3Location": {"Bucket": artifacts, "Key": self.definition_key}
            },
        )
        pipeline.node.add_dependency(self.deployment)
        # CloudFormation hands SageMaker the definition's location: the role must be able to read it first.
        pipeline.node.add_dependency(read_definition)
        pipeline.node.add_dependency(self.model_package_group)
        return pipeline
