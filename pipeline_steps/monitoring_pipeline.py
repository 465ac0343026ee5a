"""The monitoring pipeline: drift and late-label model quality over the captures of the last window.

`get_monitoring_pipeline(session, config)` assembles one small function per step, like the training
pipeline. Both steps run `containers/monitoring_window.py` on the project image, which turns the window
parameters into `--start`/`--end` and runs `drift.py` (DriftCheck: captures against the statistics and
constraints of the model in service, copied to a fixed prefix on approval) or `model_quality.py`
(ModelQualityCheck: captured predictions against late failure labels). The window is the job's own clock,
read from the execution: `WindowEnd` defaults to `ExecutionHour`, the start of the hour in which the
execution started (`Execution.StartDateTime`, the same for every step and retry of one execution), and the
window covers the `WindowHours` before it; a backfill passes an ISO 8601 `WindowEnd`. The steps are
independent, network-isolated, in the job VPC, KMS-encrypted, bounded by a stopping condition and never
cached (every execution is a new window). Reports, with the PutMetricData requests the jobs cannot send
themselves, land under `s3://<artifact bucket>/<output prefix><execution id>/<step>/report/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.functions import Join
from sagemaker.workflow.parameters import Parameter, ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.steps import ProcessingStep

from pipeline_steps import monitoring_names as mnames
from pipeline_steps.code import script_uri
from pipeline_steps.job_settings import JOB_NAME_BASE, library_input, network_config, retry_policies
from pipeline_steps.monitoring_config import MonitoringPipelineConfig
from pipeline_steps.names import LIBRARY_PATH, PROCESSING_INSTANCE_TYPE
from pipeline_steps.session import definition_offline


@dataclass(frozen=True)
class MonitoringParameters:
    """One field per parameter of the monitoring pipeline, in declaration order."""

    capture_data_uri: ParameterString
    baseline_uri: ParameterString
    ground_truth_uri: ParameterString
    endpoint_name: ParameterString
    window_hours: ParameterInteger
    window_end: ParameterString
    processing_instance_type: ParameterString

    def as_list(self) -> list[Parameter]:
        """The parameters in declaration order, as the pipeline takes them."""
        return [getattr(self, item.name) for item in fields(self)]


def declare_monitoring_parameters(config: MonitoringPipelineConfig) -> MonitoringParameters:
    """The monitoring parameters, their defaults from the config's URIs and `monitoring` settings."""
    return MonitoringParameters(
        capture_data_uri=ParameterString(mnames.CAPTURE_DATA_URI, default_value=config.capture_uri),
        baseline_uri=ParameterString(mnames.BASELINE_URI, default_value=config.baseline_uri),
        ground_truth_uri=ParameterString(mnames.GROUND_TRUTH_URI, default_value=config.ground_truth_uri),
        endpoint_name=ParameterString(mnames.ENDPOINT_NAME, default_value=config.endpoint_name),
        window_hours=ParameterInteger(mnames.WINDOW_HOURS, default_value=config.monitoring.window_hours),
        window_end=ParameterString(mnames.WINDOW_END, default_value=mnames.WINDOW_END_AT_EXECUTION_HOUR),
        processing_instance_type=ParameterString(
            PROCESSING_INSTANCE_TYPE, default_value=config.monitoring.instance_type
        ),
    )


def monitoring_processor(
    session: PipelineSession, config: MonitoringPipelineConfig, params: MonitoringParameters, base: str
) -> ScriptProcessor:
    """`python3 monitoring_window.py` on the project image, isolated, with a volume and a time limit."""
    return ScriptProcessor(
        role=config.role_arn,
        image_uri=config.image_uri,
        command=["python3"],
        instance_count=1,
        instance_type=params.processing_instance_type,
        volume_size_in_gb=config.monitoring.volume_gb,
        volume_kms_key=config.kms_key_arn,
        output_kms_key=config.kms_key_arn,
        max_runtime_in_seconds=config.max_runtime_seconds,
        base_job_name=f"{JOB_NAME_BASE}-{base}",
        sagemaker_session=session,
        env={"PYTHONPATH": LIBRARY_PATH},
        network_config=network_config(config),  # reads only the isolation and VPC fields
    )


def report_uri(config: MonitoringPipelineConfig, step: str) -> Join:
    """`s3://<bucket>/<output prefix><execution id>/<step>/report`."""
    return Join(
        on="/",
        values=[
            "s3:/",
            config.artifact_bucket,
            config.output_prefix.rstrip("/"),
            ExecutionVariables.PIPELINE_EXECUTION_ID,
            step,
            mnames.REPORT_OUTPUT,
        ],
    )


def captures_input(params: MonitoringParameters) -> ProcessingInput:
    """Only the monitored endpoint's captures: `<CaptureDataUri><EndpointName>/`."""
    return ProcessingInput(
        source=Join(on="", values=[params.capture_data_uri, params.endpoint_name, "/"]),
        destination=mnames.CAPTURES_PATH,
        input_name=mnames.CAPTURES_INPUT,
    )


def window_arguments(step: str, params: MonitoringParameters) -> list:
    """The entry script's own arguments, then `--`, then those passed through to the job."""
    return [
        *("--job", mnames.JOB_OF_STEP[step]),
        *("--window-end", params.window_end),
        *("--execution-start", ExecutionVariables.START_DATETIME),
        *("--window-hours", params.window_hours.to_string()),
        "--",
        *("--endpoint", params.endpoint_name),
        *("--metrics-target", "file"),
    ]


def monitoring_step(
    session: PipelineSession,
    config: MonitoringPipelineConfig,
    params: MonitoringParameters,
    step: str,
    inputs: list[ProcessingInput],
) -> ProcessingStep:
    """One window job (`step`'s job of monitoring_window.py) over `inputs`, writing its report."""
    processor = monitoring_processor(session, config, params, mnames.JOB_OF_STEP[step])
    output = ProcessingOutput(
        output_name=mnames.REPORT_OUTPUT, source=mnames.REPORT_PATH, destination=report_uri(config, step)
    )
    step_args = processor.run(
        code=script_uri(config.code_uri, mnames.WINDOW_SCRIPT),
        inputs=[*inputs, library_input(config)],
        outputs=[output],
        arguments=window_arguments(step, params),
    )
    return ProcessingStep(name=step, step_args=step_args, retry_policies=retry_policies())


def drift_step(
    session: PipelineSession, config: MonitoringPipelineConfig, params: MonitoringParameters
) -> ProcessingStep:
    """Captured inputs of the window against the baselines of the model in service."""
    baseline = ProcessingInput(
        source=params.baseline_uri, destination=mnames.BASELINE_PATH, input_name=mnames.BASELINE_INPUT
    )
    return monitoring_step(session, config, params, mnames.DRIFT_STEP, [captures_input(params), baseline])


def quality_step(
    session: PipelineSession, config: MonitoringPipelineConfig, params: MonitoringParameters
) -> ProcessingStep:
    """Captured predictions of the window against the failure labels that arrived since."""
    labels = ProcessingInput(
        source=params.ground_truth_uri,
        destination=mnames.GROUND_TRUTH_PATH,
        input_name=mnames.GROUND_TRUTH_INPUT,
    )
    return monitoring_step(session, config, params, mnames.QUALITY_STEP, [captures_input(params), labels])


def get_monitoring_pipeline(session: PipelineSession, config: MonitoringPipelineConfig) -> Pipeline:
    """The whole monitoring pipeline, rendered from the config; no AWS call is made while building it."""
    params = declare_monitoring_parameters(config)
    return Pipeline(
        name=config.pipeline_name,
        parameters=params.as_list(),
        steps=[drift_step(session, config, params), quality_step(session, config, params)],
        sagemaker_session=session,
    )


def render_monitoring_definition(config: MonitoringPipelineConfig) -> str:
    """The monitoring definition JSON (stable key order), made offline like the training definition."""
    definition = definition_offline(config, get_monitoring_pipeline)
    return json.dumps(definition, indent=2, sort_keys=True)
