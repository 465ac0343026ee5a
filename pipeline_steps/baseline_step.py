"""The DataQualityBaseline step and the drift-check baselines a registered model package refers to.

By default the baseline is a processing step running the project's own `baseline.py` on the job image:
statistics.json and constraints.json of the training rows, in the Model Monitor format, with no Model
Monitor access needed (closed to new customers). With `config.monitoring.use_model_monitor` it is a
`QualityCheckStep` running the Model Monitor analyzer instead, for accounts that have it. Either way the
two files land under the kept registry prefix and their URIs, read from the step's properties (right for a
cached step too), become the package's `DriftCheckBaselines`.
"""

from __future__ import annotations

from sagemaker.drift_check_baselines import DriftCheckBaselines
from sagemaker.model_metrics import MetricsSource
from sagemaker.model_monitor import DatasetFormat
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.check_job_config import CheckJobConfig
from sagemaker.workflow.functions import Join
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.quality_check_step import DataQualityCheckConfig, QualityCheckStep
from sagemaker.workflow.steps import ProcessingStep

from pipeline_steps import names
from pipeline_steps.code import script_uri
from pipeline_steps.config import PipelineConfig
from pipeline_steps.job_settings import (
    JOB_NAME_BASE,
    cache_config,
    library_input,
    network_config,
    output_uri,
    registry_uri,
    retry_policies,
    script_processor,
)
from pipeline_steps.parameters import PipelineParameters

BaselineStep = ProcessingStep | QualityCheckStep


def processing_baseline_step(
    session: PipelineSession, config: PipelineConfig, params: PipelineParameters, preprocess: ProcessingStep
) -> ProcessingStep:
    """Our baseline job on the project image: the preprocess step's baseline rows -> the two files."""
    processor = script_processor(session, config, params, "baseline")
    dataset = ProcessingInput(
        source=output_uri(preprocess, names.BASELINE_OUTPUT),
        destination=names.BASELINE_DATASET_PATH,
        input_name=names.BASELINE_DATASET_INPUT,
    )
    output = ProcessingOutput(
        output_name=names.DATA_QUALITY_OUTPUT,
        source=names.DATA_QUALITY_OUTPUT_PATH,
        destination=registry_uri(config, names.BASELINE_STEP, names.DATA_QUALITY_OUTPUT),
    )
    step_args = processor.run(
        code=script_uri(config.code_uri, names.BASELINE_SCRIPT),
        inputs=[dataset, library_input(config)],
        outputs=[output],
        arguments=[
            *("--dataset-dir", names.BASELINE_DATASET_PATH),
            *("--output-dir", names.DATA_QUALITY_OUTPUT_PATH),
            "--header",
        ],
    )
    return ProcessingStep(
        name=names.BASELINE_STEP,
        step_args=step_args,
        cache_config=cache_config(config),
        retry_policies=retry_policies(),
    )


def model_monitor_baseline_step(
    session: PipelineSession, config: PipelineConfig, params: PipelineParameters, preprocess: ProcessingStep
) -> QualityCheckStep:
    """The Model Monitor analyzer's data-quality baseline (needs Model Monitor access on the account)."""
    check_config = DataQualityCheckConfig(
        baseline_dataset=output_uri(preprocess, names.BASELINE_OUTPUT),
        dataset_format=DatasetFormat.csv(header=True),
        output_s3_uri=registry_uri(config, names.BASELINE_STEP, names.DATA_QUALITY_OUTPUT),
    )
    job_config = CheckJobConfig(
        role=config.role_arn,
        instance_count=1,
        instance_type=params.processing_instance_type,
        volume_kms_key=config.kms_key_arn,
        output_kms_key=config.kms_key_arn,
        max_runtime_in_seconds=config.max_runtime_seconds,
        base_job_name=f"{JOB_NAME_BASE}-baseline",
        sagemaker_session=session,
        network_config=network_config(config),
    )
    return QualityCheckStep(
        name=names.BASELINE_STEP,
        quality_check_config=check_config,
        check_job_config=job_config,
        skip_check=True,
        register_new_baseline=True,
        model_package_group_name=config.model_package_group_name,
        cache_config=cache_config(config),
    )


def baseline_step(
    session: PipelineSession, config: PipelineConfig, params: PipelineParameters, preprocess: ProcessingStep
) -> BaselineStep:
    """The variant the config asks for."""
    use_model_monitor = config.monitoring.use_model_monitor
    build = model_monitor_baseline_step if use_model_monitor else processing_baseline_step
    return build(session, config, params, preprocess)


def drift_check_baselines(baseline: BaselineStep) -> DriftCheckBaselines:
    """The package's data-quality drift baselines, from the baseline step's properties."""
    if isinstance(baseline, QualityCheckStep):
        statistics = baseline.properties.CalculatedBaselineStatistics
        constraints = baseline.properties.CalculatedBaselineConstraints
    else:
        folder = output_uri(baseline, names.DATA_QUALITY_OUTPUT)
        statistics = Join(on="/", values=[folder, names.STATISTICS_FILE])
        constraints = Join(on="/", values=[folder, names.CONSTRAINTS_FILE])
    return DriftCheckBaselines(
        model_data_statistics=MetricsSource(content_type="application/json", s3_uri=statistics),
        model_data_constraints=MetricsSource(content_type="application/json", s3_uri=constraints),
    )
