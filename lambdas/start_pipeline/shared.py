"""The functions' shared package (`lambdas/common`) under the name it has where this function runs.

In the repository (tests, the CDK app) it is `lambdas.common`; in the Lambda bundle, whose code root is
`lambdas/`, it is the top-level `common` and this function's package is top-level too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING or __name__.count(".") >= 2:  # lambdas.<function>.shared
    from ..common.clients import make_client, make_clients
    from ..common.config import BUCKET_PATTERN, NAME_PATTERN, PIPELINE_NAME_PATTERN, ConfigError, EnvReader
    from ..common.decisions import DecisionLog, Ignored, Skipped
    from ..common.events import (
        APPROVED,
        ENDPOINT_STATE_CHANGE,
        MODEL_PACKAGE_STATE_CHANGE,
        PIPELINE_EXECUTION_STATUS_CHANGE,
        REJECTED,
        SAGEMAKER_SOURCE,
    )
    from ..common.handler import run_logged
    from ..common.s3uri import S3_URI_PATTERN, S3Uri, S3UriError, is_s3_uri, parse_s3_uri
else:  # <function>.shared
    from common.clients import make_client, make_clients
    from common.config import BUCKET_PATTERN, NAME_PATTERN, PIPELINE_NAME_PATTERN, ConfigError, EnvReader
    from common.decisions import DecisionLog, Ignored, Skipped
    from common.events import (
        APPROVED,
        ENDPOINT_STATE_CHANGE,
        MODEL_PACKAGE_STATE_CHANGE,
        PIPELINE_EXECUTION_STATUS_CHANGE,
        REJECTED,
        SAGEMAKER_SOURCE,
    )
    from common.handler import run_logged
    from common.s3uri import S3_URI_PATTERN, S3Uri, S3UriError, is_s3_uri, parse_s3_uri

__all__ = [
    "APPROVED",
    "BUCKET_PATTERN",
    "ENDPOINT_STATE_CHANGE",
    "MODEL_PACKAGE_STATE_CHANGE",
    "NAME_PATTERN",
    "PIPELINE_EXECUTION_STATUS_CHANGE",
    "PIPELINE_NAME_PATTERN",
    "REJECTED",
    "S3_URI_PATTERN",
    "SAGEMAKER_SOURCE",
    "ConfigError",
    "DecisionLog",
    "EnvReader",
    "Ignored",
    "S3Uri",
    "S3UriError",
    "Skipped",
    "is_s3_uri",
    "make_client",
    "make_clients",
    "parse_s3_uri",
    "run_logged",
]
