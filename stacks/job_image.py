"""Where the job image comes from: the CDK Docker image asset, or an image the user brings (pinned).

The asset is built from ``containers/Dockerfile`` for linux/amd64 and pushed by ``cdk deploy`` into the
bootstrap stack's container-assets repository, tagged with its content hash; ``cdk synth`` only stages
the folder (no Docker needed). ``containers/.dockerignore`` keeps caches and test leftovers out of both
the image and that hash, so the same sources give the same tag. A user may bring an image instead
(``pipeline.job_image_uri``, pinned by digest or an immutable tag). Every consumer (pipeline jobs,
registered model packages, the endpoint model, the monitoring jobs) uses the one URI that
:func:`job_image_uri` returns; IAM lets the job and model roles pull only from its repository.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

from pipeline_steps.code import CONTAINERS_DIR
from settings import PipelineSettings, Settings

# SageMaker's ML instances (ml.m5, ml.c5, ...) run x86_64 images; a build on an ARM laptop must say so.
JOB_IMAGE_PLATFORM = ecr_assets.Platform.LINUX_AMD64


def asset_repository_name(settings: Settings) -> str:
    """The container-assets repository of the CDK bootstrap stack (default synthesizer)."""
    qualifier, aws = settings.security.cdk_bootstrap_qualifier, settings.aws
    return f"cdk-{qualifier}-container-assets-{aws.account}-{aws.region}"


def job_image_repository(settings: Settings) -> tuple[str, str, str]:
    """(account, region, repository name) of the repository the job image is pulled from."""
    uri = settings.pipeline.job_image_uri
    if uri is None:
        return settings.aws.account, settings.aws.region, asset_repository_name(settings)
    registry, _, path = uri.partition("/")
    account, region = registry.split(".")[0], registry.split(".")[3]
    repository = path.split("@", 1)[0].rsplit(":", 1)[0]
    return account, region, repository


def job_image_repository_arn(settings: Settings, partition: str = "aws") -> str:
    """ARN of that repository, for the ECR pull statements of the job and model roles."""
    account, region, repository = job_image_repository(settings)
    return f"arn:{partition}:ecr:{region}:{account}:repository/{repository}"


def create_job_image_asset(
    scope: Construct, construct_id: str, directory: Path = CONTAINERS_DIR
) -> ecr_assets.DockerImageAsset:
    """The image asset of ``directory`` (its ``.dockerignore`` applies); synth stages it, deploy builds it."""
    return ecr_assets.DockerImageAsset(
        scope, construct_id, directory=str(directory), platform=JOB_IMAGE_PLATFORM
    )


def job_image_uri(
    scope: Construct, pipeline: PipelineSettings
) -> tuple[str, ecr_assets.DockerImageAsset | None]:
    """The one URI every consumer uses, and the asset behind it (None when the user brings the image).

    The asset's URI is a token (``<account>.dkr.ecr.<region>.${AWS::URLSuffix}/<repository>:<hash>``):
    it resolves to the same ``Fn::Sub`` in whichever stack uses it, without a cross-stack export.
    """
    if pipeline.job_image_uri is not None:
        return pipeline.job_image_uri, None
    asset = create_job_image_asset(scope, "JobImage")
    return asset.image_uri, asset
