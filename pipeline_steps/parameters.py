"""The pipeline's parameters, declared once with their defaults taken from the `PipelineConfig`.

`declare_parameters` returns a `PipelineParameters` holding one SDK parameter object per name in
`names.PARAMETER_NAMES`; the step builders read them by attribute, and `as_list()` gives the pipeline's
`parameters=` in the declared order. A test checks that every declared parameter is referenced by a step.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sagemaker.workflow.parameters import Parameter, ParameterFloat, ParameterInteger, ParameterString

from pipeline_steps import names
from pipeline_steps.config import PipelineConfig


@dataclass(frozen=True)
class PipelineParameters:
    """One field per pipeline parameter, in the order the definition declares them."""

    input_data_uri: ParameterString
    subset: ParameterString
    processing_instance_type: ParameterString
    processing_instance_count: ParameterInteger
    training_instance_type: ParameterString
    model_family: ParameterString
    max_tuning_jobs: ParameterInteger
    max_parallel_tuning_jobs: ParameterInteger
    rmse_threshold: ParameterFloat
    score_threshold: ParameterFloat
    champion_tolerance: ParameterFloat
    champion_model_uri: ParameterString
    model_approval_status: ParameterString

    def as_list(self) -> list[Parameter]:
        return [getattr(self, item.name) for item in fields(self)]


def declare_parameters(config: PipelineConfig) -> PipelineParameters:
    """The parameters with the config's defaults (a run may override any of them)."""
    return PipelineParameters(
        input_data_uri=ParameterString(names.INPUT_DATA_URI, default_value=config.data_uri),
        subset=ParameterString(names.SUBSET, default_value=config.subset, enum_values=list(names.SUBSETS)),
        processing_instance_type=ParameterString(
            names.PROCESSING_INSTANCE_TYPE, default_value=config.processing_instance_type
        ),
        processing_instance_count=ParameterInteger(
            names.PROCESSING_INSTANCE_COUNT, default_value=config.processing_instance_count
        ),
        training_instance_type=ParameterString(
            names.TRAINING_INSTANCE_TYPE, default_value=config.training_instance_type
        ),
        model_family=ParameterString(
            names.MODEL_FAMILY, default_value=config.model_family, enum_values=list(names.MODEL_FAMILIES)
        ),
        max_tuning_jobs=ParameterInteger(names.MAX_TUNING_JOBS, default_value=config.max_tuning_jobs),
        max_parallel_tuning_jobs=ParameterInteger(
            names.MAX_PARALLEL_TUNING_JOBS, default_value=config.max_parallel_tuning_jobs
        ),
        rmse_threshold=ParameterFloat(names.RMSE_THRESHOLD, default_value=config.rmse_threshold),
        score_threshold=ParameterFloat(names.SCORE_THRESHOLD, default_value=config.score_threshold),
        champion_tolerance=ParameterFloat(names.CHAMPION_TOLERANCE, default_value=config.champion_tolerance),
        champion_model_uri=ParameterString(names.CHAMPION_MODEL_URI, default_value=config.champion_uri),
        model_approval_status=ParameterString(
            names.MODEL_APPROVAL_STATUS,
            default_value=config.approval_status,
            enum_values=list(names.APPROVAL_STATUSES),
        ),
    )
