"""Where the job image comes from: the CDK Docker image asset, or an image the user brings (pinned).

The asset is built from ``containers/Dockerfile`` and pushed by ``cdk deploy`` into the bootstrap
stack's container-assets repository, tagged with its content hash; ``cdk synth`` only stages the
folder. A user may bring an image instead (``pipeline.job_image_uri``, pinned by digest or an
immutable tag). Every consumer (pipeline jobs, registered model packages, the endpoint model, the
monitoring jobs) uses the one URI; IAM lets the job and model roles pull only from its repository.
"""

from __future__ import annotations

from settings import Settings


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
