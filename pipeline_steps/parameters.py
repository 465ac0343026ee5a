"""The pipeline's parameters, declared once with their defaults taken from the config's settings.

`declare_parameters` returns a `PipelineParameters` holding one SDK parameter object per name in
`names.PARAMETER_NAMES`; the step builders read them by attribute, and `as_list()` gives the pipeline's
`parameters=` in the declared order. Each parameter is spelled as the `PipelineSettings` field whose
value is its default (`tuning_max_jobs` -> `TuningMaxJobs`). The quality gate's values
(`names.GATE_PARAMETER_NAMES`) are parameters only when `config.gate_overridable`; otherwise the same
fields hold plain values that render as literals, fixed at deploy time, and are not declared. A test
checks that every declared parameter is referenced by a step. `BOUNDS` holds the allowed range of the
numeric ones and `declared_requests` the declarations as the definition renders them: the local runner
checks a run's values against both before any work (`local_runner.params_check`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, cast

from sagemaker.workflow.parameters import Parameter, ParameterFloat, ParameterInteger, ParameterString

from pipeline_steps import names
from pipeline_steps.config import PipelineConfig

# Inclusive (minimum, maximum) of the values a run may give; None is open. The tuning and instance bounds are
# the SageMaker API's (ResourceLimits.MaxNumberOfTrainingJobs and MaxParallelTrainingJobs >= 1,
# ProcessingClusterConfig.InstanceCount 1..100); the gate's thresholds are an error measure and a tolerance.
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    names.TUNING_MAX_JOBS: (1, None),
    names.TUNING_MAX_PARALLEL_JOBS: (1, None),
    names.PROCESSING_INSTANCE_COUNT: (1, 100),
    names.RMSE_THRESHOLD: (0, None),
    names.SCORE_THRESHOLD: (0, None),
    names.CHAMPION_TOLERANCE: (0, None),
}


@dataclass(frozen=True)
class PipelineParameters:
    """One field per pipeline parameter, in the order the definition declares them."""

    input_data_uri: ParameterString
    subset: ParameterString
    data_version: ParameterString
    registered_data_version: ParameterString
    processing_instance_type: ParameterString
    processing_instance_count: ParameterInteger
    training_instance_type: ParameterString
    tuning_max_jobs: ParameterInteger
    tuning_max_parallel_jobs: ParameterInteger
    # The gate: parameters when overridable, else literals (float or str).
    rmse_threshold: ParameterFloat | float
    score_threshold: ParameterFloat | float
    champion_tolerance: ParameterFloat | float
    champion_model_uri: ParameterString | str
    model_approval_status: ParameterString | str

    def as_list(self) -> list[Parameter]:
        """The fields that are pipeline parameters, in declaration order; gate literals are left out."""
        values = (getattr(self, item.name) for item in fields(self))
        return [value for value in values if isinstance(value, Parameter)]


def as_argument(value: Parameter | float | str) -> object:
    """A value for a job's command line: parameters render with `.to_string()`, literals as text."""
    return value.to_string() if isinstance(value, Parameter) else str(value)


def _gate(config: PipelineConfig) -> dict[str, Any]:
    gate = config.pipeline
    if not config.gate_overridable:
        return {
            "rmse_threshold": gate.rmse_threshold,
            "score_threshold": gate.score_threshold,
            "champion_tolerance": config.champion_tolerance,
            "champion_model_uri": config.champion_uri,
            "model_approval_status": names.PENDING_APPROVAL,
        }
    return {
        "rmse_threshold": ParameterFloat(names.RMSE_THRESHOLD, default_value=gate.rmse_threshold),
        "score_threshold": ParameterFloat(names.SCORE_THRESHOLD, default_value=gate.score_threshold),
        "champion_tolerance": ParameterFloat(
            names.CHAMPION_TOLERANCE, default_value=config.champion_tolerance
        ),
        "champion_model_uri": ParameterString(names.CHAMPION_MODEL_URI, default_value=config.champion_uri),
        "model_approval_status": ParameterString(
            names.MODEL_APPROVAL_STATUS,
            default_value=config.approval_status,
            enum_values=list(names.APPROVAL_STATUSES),
        ),
    }


def declare_parameters(config: PipelineConfig) -> PipelineParameters:
    """The parameters with the config's defaults (a run may override any of them)."""
    settings = config.pipeline
    return PipelineParameters(
        input_data_uri=ParameterString(names.INPUT_DATA_URI, default_value=config.data_uri),
        subset=ParameterString(names.SUBSET, default_value=config.subset, enum_values=list(names.SUBSETS)),
        data_version=ParameterString(names.DATA_VERSION, default_value=config.data_version),
        registered_data_version=ParameterString(names.REGISTERED_DATA_VERSION, default_value=""),
        processing_instance_type=ParameterString(
            names.PROCESSING_INSTANCE_TYPE, default_value=settings.processing_instance_type
        ),
        processing_instance_count=ParameterInteger(
            names.PROCESSING_INSTANCE_COUNT, default_value=settings.processing_instance_count
        ),
        training_instance_type=ParameterString(
            names.TRAINING_INSTANCE_TYPE, default_value=settings.training_instance_type
        ),
        tuning_max_jobs=ParameterInteger(names.TUNING_MAX_JOBS, default_value=settings.tuning_max_jobs),
        tuning_max_parallel_jobs=ParameterInteger(
            names.TUNING_MAX_PARALLEL_JOBS, default_value=settings.tuning_max_parallel_jobs
        ),
        **_gate(config),
    )


def declared_requests(config: PipelineConfig) -> list[dict]:
    """The parameters as the rendered definition declares them (Name, Type, DefaultValue, EnumValues)."""
    # a Parameter's request is one dict (sagemaker types every entity's as a dict or a list of them)
    return [cast(dict, parameter.to_request()) for parameter in declare_parameters(config).as_list()]
