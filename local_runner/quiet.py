"""Silences the SageMaker SDK's import-time noise, in one place, for the project's command lines.

`import sagemaker` (needed only to render a definition) prints the v2 -> v3 deprecation notice twice (a
FutureWarning and a print), logs `sagemaker.config INFO` lines to stdout about config files it did not
find, and builds a boto3 session whose credential chain probes the EC2 instance-metadata endpoint.
`python -m local_runner` and `python -m pipeline_steps` call `silence_sdk()` before anything imports the
SDK. `offline=True` also turns the metadata probe off: right for the local runner and for offline
rendering, never for the AWS verbs, which may run on EC2 with an instance profile. A value the user set
for either variable wins.
"""

from __future__ import annotations

import logging
import os

V2_WARNING_SWITCH = "SAGEMAKER_SUPPRESS_V2_WARNING"  # read by sagemaker.deprecations at each warning
METADATA_SWITCH = "AWS_EC2_METADATA_DISABLED"  # read by botocore's credential and region chains


def silence_sdk(offline: bool) -> None:
    """Quiet the SDK's deprecation notice and config logging; with `offline`, skip the metadata probe."""
    os.environ.setdefault(V2_WARNING_SWITCH, "1")
    if offline:
        os.environ.setdefault(METADATA_SWITCH, "true")
    for name in ("sagemaker.config", "mlflow.store.db.utils", "alembic.runtime.migration"):
        logger = logging.getLogger(name)  # INFO lines about config files and creating the tracking tables
        if logger.level == logging.NOTSET:  # the libraries set INFO only on a logger nobody configured
            logger.setLevel(logging.WARNING)
