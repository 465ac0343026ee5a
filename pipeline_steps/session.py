"""An offline SageMaker `PipelineSession` for rendering the definition: no network, no ambient config.

`offline_session` builds the session on a boto3 Session with fake static credentials and the config's
region, with `default_bucket` set so the SDK never asks S3 for one, and with an explicit, empty SageMaker
SDK config so a user's `~/.config/sagemaker/config.yaml` cannot inject defaults (tags, keys, subnets)
into the definition. `default_boto_session` makes that boto3 session the process default while
rendering, because every SDK estimator also builds a client on the default session (its TensorBoard app
helper), and resolving ambient credentials there probes the EC2 metadata endpoint. `disable_sdk_telemetry`
is the one place that stops the SDK's usage telemetry (an S3 GET and STS lookups per decorated call); it
swaps the sender for a no-op rather than setting `TelemetryOptOut`, which makes every SDK config lookup
re-validate the config schema and slows rendering by seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import boto3
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession

from pipeline_steps.config import PipelineConfig

# Well-formed but fake: botocore signs nothing with them because no request is ever sent.
_FAKE_ACCESS_KEY = "AKIAOFFLINERENDERING"
_FAKE_SECRET_KEY = "offline-rendering-makes-no-aws-calls"
_EMPTY_SDK_CONFIG = {"SchemaVersion": "1.0"}


def _no_telemetry(*_args: object, **_kwargs: object) -> None:
    """Stand-in for the SDK's telemetry sender: sends nothing."""


def disable_sdk_telemetry() -> None:
    """Replace the SageMaker SDK's telemetry sender with a no-op (idempotent)."""
    from sagemaker.telemetry import telemetry_logging

    telemetry_logging._send_telemetry_request = _no_telemetry


def offline_session(config: PipelineConfig) -> PipelineSession:
    """A PipelineSession that renders step arguments instead of starting jobs, with no AWS access."""
    boto_session = boto3.Session(
        aws_access_key_id=_FAKE_ACCESS_KEY,
        aws_secret_access_key=_FAKE_SECRET_KEY,
        region_name=config.region,
    )
    session = PipelineSession(
        boto_session=boto_session,
        default_bucket=config.artifact_bucket,
        sagemaker_config=dict(_EMPTY_SDK_CONFIG),
    )
    # Given a non-empty config, the SDK re-validates its JSON schema on every default lookup (~0.15 s each,
    # dozens per render); an empty one means "no defaults" and skips the lookups.
    session.sagemaker_config = {}
    return session


@contextlib.contextmanager
def default_boto_session(boto_session: boto3.Session) -> Iterator[None]:
    """Make `boto_session` boto3's default session inside the block, then restore the previous one."""
    previous = boto3.DEFAULT_SESSION
    boto3.DEFAULT_SESSION = boto_session
    try:
        yield
    finally:
        boto3.DEFAULT_SESSION = previous


def definition_offline(config: Any, build: Callable[[PipelineSession, Any], Pipeline]) -> dict:
    """The definition of `build(session, config)` as a dict, rendered offline with the SDK kept quiet.

    `config` needs only the region and the bucket (see `offline_session`). The SDK logs, per step, what it
    does with pipeline variables and warns "Running within a PipelineSession, there will be No Wait":
    both are expected for a definition rendered ahead of execution, and noise on a terminal.
    """
    disable_sdk_telemetry()
    session = offline_session(config)
    sdk_logger = logging.getLogger("sagemaker")
    level = sdk_logger.level
    sdk_logger.setLevel(logging.ERROR)
    try:
        with default_boto_session(session.boto_session), warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Running within a PipelineSession", category=UserWarning
            )
            return json.loads(build(session, config).definition())
    finally:
        sdk_logger.setLevel(level)
