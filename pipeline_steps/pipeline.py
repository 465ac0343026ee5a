"""The SageMaker pipeline: preprocess, baseline, tune, refit, evaluate, gate, data-version check, register.

`get_pipeline(session, config)` assembles one small function per step (the tuning, baseline and gate
steps live in their own modules). Steps are wired only through step properties, the `EvaluationReport`
property file (`JsonGet`), `Join`s and the parameters of `parameters.py`; every S3 location is explicit
(bucket, code prefix and image come from the config), so a `PipelineSession` renders the definition
without touching AWS. The model evaluated and registered is `RefitModel`'s (the best trial retrained on
all training units, `refit_step.py`), scored on the official test files when the input holds them.
Scratch outputs land under `s3://<artifacts>/<pipeline>/<execution id>/<step>/...` (expires); what a
registered model package refers to (evaluation report, drift baselines, data manifest) under
`s3://<artifacts>/registry/<pipeline>/<execution id>/<step>/...` and tuned and refit models under
`s3://<artifacts>/models/<pipeline>/<training job>/output/model.tar.gz` (both kept). Every job carries
the config's stopping condition.
"""

from __future__ import annotations

from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.steps import ProcessingStep, TrainingStep

from pipeline_steps import names
from pipeline_steps.baseline_step import BaselineStep, baseline_step, drift_check_baselines
from pipeline_steps.code import script_uri
from pipeline_steps.config import PipelineConfig
from pipeline_steps.gate import (
    data_version_check_step,
    evaluation_json_uri,
    evaluation_report,
    fail_step,
    gate_step,
)
from pipeline_steps.job_settings import (
    cache_config,
    execution_uri,
    library_input,
    output_uri,
    registry_uri,
    retry_policies,
    script_processor,
    step_retry_policy,
)
from pipeline_steps.parameters import PipelineParameters, as_argument, declare_parameters
from pipeline_steps.refit_step import refit_model_uri, refit_step
from pipeline_steps.tuning import tune_step

SERVING_CONTENT_TYPES = ["text/csv", "application/json"]
SERVING_RESPONSE_TYPES = ["application/json"]


def preprocess_destination(config: PipelineConfig, name: str):
    """Registered outputs (the data manifest) under the kept registry prefix, the rest as scratch."""
    where = registry_uri if name in names.REGISTERED_PREPROCESS_OUTPUTS else execution_uri
    return where(config, names.PREPROCESS_STEP, name)


def preprocess_step(
    session: PipelineSession, config: PipelineConfig, params: PipelineParameters
) -> ProcessingStep:
    """Split raw C-MAPSS files into train/validation/test units, a baseline table, metadata and manifest.

    The input prefix is read twice: sharded (the training files, spread over the instances) and fully
    replicated (where preprocess looks for the official test/RUL pair, which sharding could split).
    `--data-version` puts the data's version into the request, so SageMaker's cache key (the request
    arguments) changes with the data and not only with its S3 prefix.
    """
    processor = script_processor(session, config, params, "preprocess", params.processing_instance_count)
    raw = ProcessingInput(
        source=params.input_data_uri,
        destination=names.RAW_INPUT_PATH,
        input_name=names.RAW_INPUT,
        s3_data_distribution_type="ShardedByS3Key",
    )
    official = ProcessingInput(
        source=params.input_data_uri,
        destination=names.OFFICIAL_INPUT_PATH,
        input_name=names.OFFICIAL_INPUT,
        s3_data_distribution_type="FullyReplicated",
    )
    outputs = [
        ProcessingOutput(
            output_name=name,
            source=f"{names.PROCESSING_ROOT}/{name}",
            destination=preprocess_destination(config, name),
        )
        for name in names.PREPROCESS_OUTPUTS
    ]
    step_args = processor.run(
        code=script_uri(config.code_uri, names.PREPROCESS_SCRIPT),
        inputs=[raw, official, library_input(config)],
        outputs=outputs,
        arguments=["--subset", params.subset, "--data-version", params.data_version],
    )
    return ProcessingStep(
        name=names.PREPROCESS_STEP,
        step_args=step_args,
        cache_config=cache_config(config),
        retry_policies=retry_policies(),
    )


def evaluate_step(
    session: PipelineSession,
    config: PipelineConfig,
    params: PipelineParameters,
    preprocess: ProcessingStep,
    refit: TrainingStep,
) -> ProcessingStep:
    """Score the refit model on the evaluation units (official test set, else held-out units) and compare it
    with the champion."""
    processor = script_processor(session, config, params, "evaluate")
    inputs = [
        ProcessingInput(
            source=refit_model_uri(refit),
            destination=names.MODEL_INPUT_PATH,
            input_name=names.MODEL_INPUT,
        ),
        ProcessingInput(
            source=output_uri(preprocess, names.TEST_OUTPUT),
            destination=names.TEST_INPUT_PATH,
            input_name=names.TEST_INPUT,
        ),
        ProcessingInput(
            source=params.champion_model_uri,
            destination=names.CHAMPION_INPUT_PATH,
            input_name=names.CHAMPION_INPUT,
        ),
        library_input(config),
    ]
    output = ProcessingOutput(
        output_name=names.EVALUATION_OUTPUT,
        source=f"{names.PROCESSING_ROOT}/{names.EVALUATION_OUTPUT}",
        destination=registry_uri(config, names.EVALUATE_STEP, names.EVALUATION_OUTPUT),
    )
    step_args = processor.run(
        code=script_uri(config.code_uri, names.EVALUATE_SCRIPT),
        inputs=inputs,
        outputs=[output],
        arguments=[
            *("--rmse-threshold", as_argument(params.rmse_threshold)),
            *("--score-threshold", as_argument(params.score_threshold)),
            *("--champion-tolerance", as_argument(params.champion_tolerance)),
        ],
    )
    return ProcessingStep(
        name=names.EVALUATE_STEP,
        step_args=step_args,
        property_files=[evaluation_report()],
        cache_config=cache_config(config),
        retry_policies=retry_policies(),
    )


def register_step(
    session: PipelineSession,
    config: PipelineConfig,
    params: PipelineParameters,
    preprocess: ProcessingStep,
    baseline: BaselineStep,
    refit: TrainingStep,
    evaluate: ProcessingStep,
) -> ModelStep:
    """Register the refit model with its test metrics, data-quality baseline, the S3 prefix of its data
    manifest and its data version in the customer metadata (no repack: no entry_point)."""
    model = Model(
        image_uri=config.image_uri,
        model_data=refit_model_uri(refit),
        role=config.role_arn,
        sagemaker_session=session,
        env={"SAGEMAKER_CONTAINER_LOG_LEVEL": "20", "SAGEMAKER_REGION": config.region},
    )
    metrics = ModelMetrics(
        model_statistics=MetricsSource(content_type="application/json", s3_uri=evaluation_json_uri(evaluate))
    )
    step_args = model.register(
        content_types=SERVING_CONTENT_TYPES,
        response_types=SERVING_RESPONSE_TYPES,
        # The endpoint's instance type (settings' serving.instance_type); batch scoring is a processing job,
        # not a transform job, so the serving type is the one a transform of this package would use too.
        inference_instances=[config.serving.instance_type],
        transform_instances=[config.serving.instance_type],
        model_package_group_name=config.model_package_group_name,
        approval_status=params.model_approval_status,
        model_metrics=metrics,
        drift_check_baselines=drift_check_baselines(baseline),
        # Output properties, not this execution's prefix: a cached step's outputs stay where they were.
        customer_metadata_properties={
            names.DATA_MANIFEST_METADATA_KEY: output_uri(preprocess, names.MANIFEST_OUTPUT),
            names.DATA_VERSION_METADATA_KEY: params.data_version,
        },
    )
    return ModelStep(name=names.REGISTER_STEP, step_args=step_args, retry_policies=[step_retry_policy()])


def get_pipeline(session: PipelineSession, config: PipelineConfig) -> Pipeline:
    """The whole pipeline, rendered from the config; no AWS call is made while building it."""
    params = declare_parameters(config)
    preprocess = preprocess_step(session, config, params)
    baseline = baseline_step(session, config, params, preprocess)
    tuning = tune_step(session, config, params, preprocess)
    refit = refit_step(session, config, params, preprocess, tuning)
    evaluate = evaluate_step(session, config, params, preprocess, refit)
    register = register_step(session, config, params, preprocess, baseline, refit, evaluate)
    new_data = data_version_check_step(params, register)
    gate = gate_step(params, evaluate, new_data, fail_step(params, evaluate))
    return Pipeline(
        name=config.pipeline_name,
        parameters=params.as_list(),
        steps=[preprocess, baseline, tuning, refit, evaluate, gate],
        sagemaker_session=session,
    )
