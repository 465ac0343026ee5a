"""The EventBridge and SageMaker spellings more than one function matches on."""

from __future__ import annotations

SAGEMAKER_SOURCE = "aws.sagemaker"
MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
PIPELINE_EXECUTION_STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Status Change"
ENDPOINT_STATE_CHANGE = "SageMaker Endpoint State Change"
# A model package's ModelApprovalStatus.
APPROVED = "Approved"
REJECTED = "Rejected"
