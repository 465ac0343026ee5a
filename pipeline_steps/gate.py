"""The quality gate and the data-version check: condition steps over evaluation.json and the parameters.

`CheckQualityGate` passes when, on the test units with the truth capped at the training cap, the RMSE and
the PHM08 score per 100 units are within their thresholds and the RMSE is within the champion's bound
(evaluate.py writes these figures and documents the basis in the report); else `FailQualityGate` ends
the run with the measured values, the protocol that produced them (the official test set, or held-out
units), the thresholds and evaluate.py's summary. The thresholds are
parameters or deploy-time literals (`PipelineParameters`). Inside the gate's if-branch,
`CheckNewDataVersion` registers only when `DataVersion` differs from `RegisteredDataVersion` (the data
version of the newest registered package, set by the starters): the same data ends the run successfully
with nothing registered. It is expressed with Equals and an empty if-branch rather than ConditionNot.
"""

from __future__ import annotations

from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import Condition, ConditionEquals, ConditionLessThanOrEqualTo
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep

from pipeline_steps import names
from pipeline_steps.job_settings import output_uri
from pipeline_steps.parameters import PipelineParameters


def evaluation_report() -> PropertyFile:
    """evaluation.json of the `evaluation` output, readable by JsonGet in later steps."""
    return PropertyFile(
        name=names.EVALUATION_PROPERTY_FILE, output_name=names.EVALUATION_OUTPUT, path=names.EVALUATION_FILE
    )


def report_value(evaluate: ProcessingStep, json_path: str) -> JsonGet:
    """A value of evaluation.json, read when the pipeline runs."""
    return JsonGet(step_name=evaluate.name, property_file=evaluation_report(), json_path=json_path)


def evaluation_json_uri(evaluate: ProcessingStep) -> Join:
    """EvaluateModel's evaluation.json, from the step's output property: right for a cached step too."""
    return Join(on="/", values=[output_uri(evaluate, names.EVALUATION_OUTPUT), names.EVALUATION_FILE])


def fail_step(params: PipelineParameters, evaluate: ProcessingStep) -> FailStep:
    """Stop the run with the measured values, the thresholds and evaluate.py's summary of the failed rule."""
    message = Join(
        on="",
        values=[
            "Quality gate failed (",
            report_value(evaluate, names.PROTOCOL_JSON_PATH),
            " evaluation protocol, on the truth capped at the training cap): test RMSE ",
            report_value(evaluate, names.RMSE_JSON_PATH),
            " (threshold ",
            params.rmse_threshold,
            "), PHM08 score per 100 units ",
            report_value(evaluate, names.SCORE_JSON_PATH),
            " (threshold ",
            params.score_threshold,
            "), champion tolerance ",
            params.champion_tolerance,
            ". ",
            report_value(evaluate, names.GATE_SUMMARY_JSON_PATH),
        ],
    )
    return FailStep(name=names.FAIL_STEP, error_message=message)


def data_version_check_step(params: PipelineParameters, register: ModelStep) -> ConditionStep:
    """Register unless this data version is the one already registered (then succeed, registering nothing)."""
    return ConditionStep(
        name=names.DATA_VERSION_CHECK_STEP,
        conditions=[ConditionEquals(left=params.data_version, right=params.registered_data_version)],
        if_steps=[],
        else_steps=[register],
    )


def gate_step(
    params: PipelineParameters, evaluate: ProcessingStep, passed: ConditionStep, fail: FailStep
) -> ConditionStep:
    """Continue to `passed` only if RMSE and PHM08 per 100 units meet the thresholds and RMSE is within the
    champion's bound; else fail."""
    rmse = report_value(evaluate, names.RMSE_JSON_PATH)
    # sagemaker's ConditionComparison types leave out JsonGet, which its documentation and code accept
    conditions: list[Condition] = [
        ConditionLessThanOrEqualTo(left=rmse, right=params.rmse_threshold),  # type: ignore[arg-type]
        ConditionLessThanOrEqualTo(
            left=report_value(evaluate, names.SCORE_JSON_PATH),  # type: ignore[arg-type]
            right=params.score_threshold,
        ),
        ConditionLessThanOrEqualTo(
            left=rmse,  # type: ignore[arg-type]
            right=report_value(evaluate, names.ALLOWED_RMSE_JSON_PATH),  # type: ignore[arg-type]
        ),
    ]
    return ConditionStep(name=names.GATE_STEP, conditions=conditions, if_steps=[passed], else_steps=[fail])
