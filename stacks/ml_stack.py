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

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from pipeline_steps.code import build_source_bundle, code_uri_for
from pipeline_steps.config import PipelineConfig
from pipeline_steps.render import render_definition
from settings import PipelineSettings
from stacks.nag import NIST_R5, acknowledge, skip_checkov
from stacks.platform import Platform

CONTAINERS_DIR = Path(__file__).resolve().parent.parent / "containers"
CHAMPION_PLACEHOLDER = "NO_CHAMPION_YET.txt"  # same name as local_runner.champion.PLACEHOLDER


def pipeline_config(
    platform: Platform, pipeline: PipelineSettings, code_version: str, image_uri: str
) -> PipelineConfig:
    """The definition's inputs on AWS: deterministic names, the job image, the key, the job network."""
    names, aws = platform.names, platform.settings.aws
    return PipelineConfig(
        pipeline_name=names.pipeline,
        region=aws.region,
        role_arn=f"arn:aws:iam::{aws.account}:role/{names.job_role}",
        artifact_bucket=names.artifacts_bucket,
        data_uri=f"s3://{names.data_bucket}/{names.raw_data_prefix}",
        code_uri=code_uri_for(names.artifacts_bucket, code_version),
        image_uri=image_uri,
        model_package_group_name=names.model_package_group,
        # The alias ARN is known before deployment; SageMaker accepts it wherever it takes a key.
        kms_key_arn=f"arn:aws:kms:{aws.region}:{aws.account}:{names.key_alias}",
        subnet_ids=tuple(platform.job_network.subnet_ids),
        security_group_ids=tuple(platform.job_network.security_group_ids),
        enable_network_isolation=pipeline.network_isolation,
        processing_instance_type=pipeline.processing_instance_type,
        processing_instance_count=pipeline.processing_instance_count,
        training_instance_type=pipeline.training_instance_type,
        max_tuning_jobs=pipeline.tuning_max_jobs,
        max_parallel_tuning_jobs=pipeline.tuning_max_parallel_jobs,
        rmse_threshold=pipeline.max_rmse,
        score_threshold=pipeline.max_score,
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
        self.job_image_uri = self._job_image_uri()
        self.config = pipeline_config(platform, pipeline, self.bundle.version, self.job_image_uri)
        self.definition = render_definition(self.config)
        self.definition_key = (
            f"pipelines/{self.config.pipeline_name}/definition-"
            f"{hashlib.sha256(self.definition.encode()).hexdigest()[:12]}.json"
        )
        self.model_package_group = self._create_model_package_group()
        self.deployment = self._create_deployment(Path(build_dir) / "code")
        self.pipeline = self._create_pipeline()

    def _job_image_uri(self) -> str:
        """Placeholder until the Docker image asset lands (see stacks/job_image.py)."""
        aws = self.platform.settings.aws
        return f"{aws.account}.dkr.ecr.{aws.region}.amazonaws.com/turbofan-rul-jobs:unbuilt"

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
        deployment = s3deploy.BucketDeployment(
            self,
            "CodeAndDefinition",
            destination_bucket=artifacts,
            log_group=log_group,
            sources=[
                s3deploy.Source.asset(str(self._code_folder(folder))),
                # Tokens in the definition (subnet and security-group ids) are resolved at deploy time.
                s3deploy.Source.json_data(self.definition_key, json.loads(self.definition)),
                s3deploy.Source.data(
                    f"{self.platform.names.champion_prefix}{CHAMPION_PLACEHOLDER}",
                    "No model has been approved yet.\n",
                ),
            ],
            prune=False,  # the champion prefix and earlier code versions are not the deployment's to delete
            retain_on_delete=True,
            server_side_encryption=s3deploy.ServerSideEncryption.AWS_KMS,
            server_side_encryption_aws_kms_key_id=self.platform.key.key_id,
            memory_limit=512,
        )
        self.platform.key.grant_encrypt_decrypt(deployment.handler_role)
        self._acknowledge_deployment_handler()
        return deployment

    def _acknowledge_deployment_handler(self) -> None:
        """The BucketDeployment handler is CDK's own singleton function; say why each finding is accepted."""
        handler = next(
            child for child in self.node.children if child.node.id.startswith("Custom::CDKBucketDeployment")
        )
        # CDK gives the handler both a GetAtt of its role and an explicit DependsOn on it; cfn-lint W3005
        # flags the redundant DependsOn. Harmless, and not ours to change.
        function = handler.node.default_child
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
        acknowledge(
            handler,
            "AwsSolutions-IAM4",
            "CDK's BucketDeployment handler writes its logs with AWSLambdaBasicExecutionRole (logs only)",
            findings=[
                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
            ],
        )
        acknowledge(
            handler,
            "AwsSolutions-IAM5",
            "CDK grants the deployment handler object-level access (bucket/*) to the CDK asset bucket and "
            "to the artifacts bucket it copies the code and definition into, and kms:GenerateDataKey*/"
            "ReEncrypt* on the project key; S3 and KMS need the wildcards for objects and key operations",
            findings=[
                "Action::s3:GetObject*",
                "Action::s3:GetBucket*",
                "Action::s3:List*",
                "Action::s3:DeleteObject*",
                "Action::s3:Abort*",
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                f"Resource::arn:aws:s3:::cdk-hnb659fds-assets-{self.platform.settings.aws.account}-"
                f"{self.platform.settings.aws.region}/*",
                f"Resource::arn:aws:s3:::{self.platform.names.artifacts_bucket}/*",
            ],
        )
        for rule, reason in (
            ("LambdaConcurrency", "runs only during deployments; a concurrency limit protects nothing"),
            ("LambdaDLQ", "invoked synchronously by CloudFormation, which reports its failures"),
            ("LambdaInsideVPC", "copies S3 objects during deployment; it holds no data and needs no VPC"),
        ):
            acknowledge(handler, f"{NIST_R5}-{rule}", f"CDK's BucketDeployment handler {reason}")
        acknowledge(
            handler,
            f"{NIST_R5}-IAMNoInlinePolicy",
            "CDK attaches the deployment handler's grants as an inline default policy",
        )

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
        pipeline.node.add_dependency(self.model_package_group)
        return pipeline
