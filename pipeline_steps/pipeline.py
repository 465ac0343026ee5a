"""The SageMaker pipeline: preprocess, baseline, tune, evaluate, gate, then register or fail.

`get_pipeline(session, config)` assembles one small function per step. Steps are wired only through
step properties, the `EvaluationReport` property file (`JsonGet`), `Join`s and the parameters of
`parameters.py`; every S3 location is explicit (bucket, code prefix and image come from the config), so a
`PipelineSession` renders the definition without touching AWS. Job outputs land under
`s3://<artifact bucket>/<pipeline name>/<execution id>/<step>/<output>`, tuned models under
`s3://<artifact bucket>/models/<pipeline name>/<training job>/output/model.tar.gz`
(kept, while the intermediates under `<pipeline name>/` expire).
"""

from __future__ import annotations

from sagemaker.drift_check_baselines import DriftCheckBaselines
from sagemaker.inputs import TrainingInput
from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.model_monitor import DatasetFormat
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.sklearn.estimator import SKLearn
from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter
from sagemaker.workflow.check_job_config import CheckJobConfig
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionLessThanOrEqualTo
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.quality_check_step import DataQualityCheckConfig, QualityCheckStep
from sagemaker.workflow.steps import ProcessingStep, TuningStep

from pipeline_steps import names
from pipeline_steps.code import script_uri, source_dir_uri
from pipeline_steps.config import PipelineConfig
from pipeline_steps.job_settings import (
    JOB_NAME_BASE,
    cache_config,
    execution_uri,
    library_input,
    models_prefix,
    network_config,
    output_uri,
    retry_policies,
    script_processor,
    step_retry_policy,
)
from pipeline_steps.parameters import PipelineParameters, declare_parameters

# Ranges of the gbm family, inside rul.hyperparameters.BOUNDS (a test checks).
GBM_RANGES = {
    "learning_rate": ("continuous", 0.02, 0.2, "Logarithmic"),
    "max_leaf_nodes": ("integer", 7, 63, "Auto"),
    "min_samples_leaf": ("integer", 10, 200, "Auto"),
    "max_features": ("continuous", 0.3, 1.0, "Auto"),
    "l2_regularization": ("continuous", 0.0, 5.0, "Auto"),
}
SERVING_CONTENT_TYPES = ["text/csv", "application/json"]
SERVING_RESPONSE_TYPES = ["application/json"]


def preprocess_step(
    session: PipelineSession, config: PipelineConfig, params: PipelineParameters
) -> ProcessingStep:
    """Split raw C-MAPSS files into train/validation/test units, a baseline table, metadata and manifest."""
    processor = script_processor(session, config, params, "preprocess", params.processing_instance_count)
    raw = ProcessingInput(
        source=params.input_data_uri,
        destination=names.RAW_INPUT_PATH,
        input_name=names.RAW_INPUT,
        s3_data_distribution_type="ShardedByS3Key",
    )
    outputs = [
        ProcessingOutput(
            output_name=name,
            source=f"{names.PROCESSING_ROOT}/{name}",
            destination=execution_uri(config, names.PREPROCESS_STEP, name),
        )
        for name in names.PREPROCESS_OUTPUTS
    ]
    step_args = processor.run(
        code=script_uri(config.code_uri, names.PREPROCESS_SCRIPT),
        inputs=[raw, library_input(config)],
        outputs=outputs,
        arguments=["--subset", params.subset],
    )
    return ProcessingStep(
        name=names.PREPROCESS_STEP,
        step_args=step_args,
        cache_config=cache_config(config),
        retry_policies=retry_policies(),
    )


def baseline_step(
    session: PipelineSession, config: PipelineConfig, params: PipelineParameters, preprocess: ProcessingStep
) -> QualityCheckStep:
    """Compute data-quality statistics and constraints of the training rows; register them as a baseline."""
    check_config = DataQualityCheckConfig(
        baseline_dataset=output_uri(preprocess, names.BASELINE_OUTPUT),
        dataset_format=DatasetFormat.csv(header=True),
        output_s3_uri=execution_uri(config, names.BASELINE_STEP, "baseline"),
    )
    job_config = CheckJobConfig(
        role=config.role_arn,
        instance_count=1,
        instance_type=params.processing_instance_type,
        volume_kms_key=config.kms_key_arn,
        output_kms_key=config.kms_key_arn,
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


def hyperparameter_ranges() -> dict:
    """The gbm search space as SDK parameter ranges."""
    kinds = {"continuous": ContinuousParameter, "integer": IntegerParameter}
    return {
        name: kinds[kind](low, high, scaling_type=scaling)
        for name, (kind, low, high, scaling) in GBM_RANGES.items()
    }


def training_estimator(
    session: PipelineSession, config: PipelineConfig, params: PipelineParameters
) -> SKLearn:
    """Script mode on the project image: train.py from the code bundle (an S3 source_dir, no upload)."""
    return SKLearn(
        entry_point=names.TRAIN_SCRIPT,
        source_dir=source_dir_uri(config.code_uri),
        image_uri=config.image_uri,
        role=config.role_arn,
        instance_count=1,
        instance_type=params.training_instance_type,
        output_path=f"s3://{config.artifact_bucket}/{models_prefix(config)}",
        volume_kms_key=config.kms_key_arn,
        output_kms_key=config.kms_key_arn,
        subnets=list(config.subnet_ids) or None,
        security_group_ids=list(config.security_group_ids) or None,
        enable_network_isolation=config.enable_network_isolation,
        encrypt_inter_container_traffic=True,
        base_job_name=f"{JOB_NAME_BASE}-train",
        hyperparameters={"model_family": params.model_family, "seed": str(config.seed)},
        metric_definitions=names.metric_definitions(),
        sagemaker_session=session,
    )


def tune_step(
    session: PipelineSession, config: PipelineConfig, params: PipelineParameters, preprocess: ProcessingStep
) -> TuningStep:
    """Bayesian search minimising the validation RMSE that train.py prints."""
    tuner = HyperparameterTuner(
        estimator=training_estimator(session, config, params),
        objective_metric_name=names.OBJECTIVE_METRIC,
        objective_type="Minimize",
        strategy="Bayesian",
        hyperparameter_ranges=hyperparameter_ranges(),
        metric_definitions=names.metric_definitions(),
        max_jobs=params.max_tuning_jobs,
        max_parallel_jobs=params.max_parallel_tuning_jobs,
        base_tuning_job_name=f"{JOB_NAME_BASE}-tune",
    )
    channels = {
        names.TRAIN_CHANNEL: TrainingInput(
            output_uri(preprocess, names.TRAIN_OUTPUT), content_type="text/csv"
        ),
        names.VALIDATION_CHANNEL: TrainingInput(
            output_uri(preprocess, names.VALIDATION_OUTPUT), content_type="text/csv"
        ),
    }
    return TuningStep(
        name=names.TUNE_STEP,
        step_args=tuner.fit(inputs=channels),
        cache_config=cache_config(config),
        retry_policies=retry_policies(),
    )


def top_model_uri(config: PipelineConfig, tuning: TuningStep) -> Join:
    """`s3://<bucket>/<pipeline>/models/<best training job>/output/model.tar.gz`."""
    return tuning.get_top_model_s3_uri(
        top_k=0, s3_bucket=config.artifact_bucket, prefix=models_prefix(config)
    )


def evaluation_report() -> PropertyFile:
    """evaluation.json of the `evaluation` output, readable by JsonGet in later steps."""
    return PropertyFile(
        name=names.EVALUATION_PROPERTY_FILE, output_name=names.EVALUATION_OUTPUT, path=names.EVALUATION_FILE
    )


def evaluate_step(
    session: PipelineSession,
    config: PipelineConfig,
    params: PipelineParameters,
    preprocess: ProcessingStep,
    tuning: TuningStep,
) -> ProcessingStep:
    """Score the best tuned model on the held-out test units and compare it with the champion."""
    processor = script_processor(session, config, params, "evaluate")
    inputs = [
        ProcessingInput(
            source=top_model_uri(config, tuning),
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
        destination=execution_uri(config, names.EVALUATE_STEP, names.EVALUATION_OUTPUT),
    )
    step_args = processor.run(
        code=script_uri(config.code_uri, names.EVALUATE_SCRIPT),
        inputs=inputs,
        outputs=[output],
        arguments=[
            *("--rmse-threshold", params.rmse_threshold.to_string()),
            *("--score-threshold", params.score_threshold.to_string()),
            *("--champion-tolerance", params.champion_tolerance.to_string()),
        ],
    )
    return ProcessingStep(
        name=names.EVALUATE_STEP,
        step_args=step_args,
        property_files=[evaluation_report()],
        cache_config=cache_config(config),
        retry_policies=retry_policies(),
    )


def report_value(evaluate: ProcessingStep, json_path: str) -> JsonGet:
    """A value of evaluation.json, read when the pipeline runs."""
    return JsonGet(step_name=evaluate.name, property_file=evaluation_report(), json_path=json_path)


def evaluation_json_uri(evaluate: ProcessingStep) -> Join:
    """EvaluateModel's evaluation.json, from the step's output property: right for a cached step too."""
    return Join(on="/", values=[output_uri(evaluate, names.EVALUATION_OUTPUT), names.EVALUATION_FILE])


def register_step(
    session: PipelineSession,
    config: PipelineConfig,
    params: PipelineParameters,
    preprocess: ProcessingStep,
    baseline: QualityCheckStep,
    tuning: TuningStep,
    evaluate: ProcessingStep,
) -> ModelStep:
    """Register the best model with its test metrics, data-quality baseline and the S3 prefix of its data
    manifest in the customer metadata (no repack: no entry_point)."""
    model = Model(
        image_uri=config.image_uri,
        model_data=top_model_uri(config, tuning),
        role=config.role_arn,
        sagemaker_session=session,
        env={"SAGEMAKER_CONTAINER_LOG_LEVEL": "20", "SAGEMAKER_REGION": config.region},
    )
    metrics = ModelMetrics(
        model_statistics=MetricsSource(content_type="application/json", s3_uri=evaluation_json_uri(evaluate))
    )
    baselines = DriftCheckBaselines(
        model_data_statistics=MetricsSource(
            content_type="application/json", s3_uri=baseline.properties.CalculatedBaselineStatistics
        ),
        model_data_constraints=MetricsSource(
            content_type="application/json", s3_uri=baseline.properties.CalculatedBaselineConstraints
        ),
    )
    step_args = model.register(
        content_types=SERVING_CONTENT_TYPES,
        response_types=SERVING_RESPONSE_TYPES,
        inference_instances=list(config.inference_instance_types),
        transform_instances=list(config.transform_instance_types),
        model_package_group_name=config.model_package_group_name,
        approval_status=params.model_approval_status,
        model_metrics=metrics,
        drift_check_baselines=baselines,
        # Output properties, not this execution's prefix: a cached step's outputs stay where they were.
        customer_metadata_properties={
            names.DATA_MANIFEST_METADATA_KEY: output_uri(preprocess, names.MANIFEST_OUTPUT)
        },
    )
    return ModelStep(name=names.REGISTER_STEP, step_args=step_args, retry_policies=[step_retry_policy()])


def fail_step(params: PipelineParameters, evaluate: ProcessingStep) -> FailStep:
    """Stop the run with the measured values, the thresholds and evaluate.py's summary of the failed rule."""
    message = Join(
        on="",
        values=[
            "Quality gate failed: test RMSE ",
            report_value(evaluate, names.RMSE_JSON_PATH),
            " (threshold ",
            params.rmse_threshold,
            "), PHM08 score ",
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


def gate_step(
    params: PipelineParameters, evaluate: ProcessingStep, register: ModelStep, fail: FailStep
) -> ConditionStep:
    """Register only if RMSE and PHM08 score meet the thresholds and RMSE is within the champion's bound."""
    rmse = report_value(evaluate, names.RMSE_JSON_PATH)
    conditions = [
        ConditionLessThanOrEqualTo(left=rmse, right=params.rmse_threshold),
        ConditionLessThanOrEqualTo(
            left=report_value(evaluate, names.SCORE_JSON_PATH), right=params.score_threshold
        ),
        ConditionLessThanOrEqualTo(left=rmse, right=report_value(evaluate, names.ALLOWED_RMSE_JSON_PATH)),
    ]
    return ConditionStep(name=names.GATE_STEP, conditions=conditions, if_steps=[register], else_steps=[fail])


def get_pipeline(session: PipelineSession, config: PipelineConfig) -> Pipeline:
    """The whole pipeline, rendered from the config; no AWS call is made while building it."""
    params = declare_parameters(config)
    preprocess = preprocess_step(session, config, params)
    baseline = baseline_step(session, config, params, preprocess)
    tuning = tune_step(session, config, params, preprocess)
    evaluate = evaluate_step(session, config, params, preprocess, tuning)
    register = register_step(session, config, params, preprocess, baseline, tuning, evaluate)
    fail = fail_step(params, evaluate)
    gate = gate_step(params, evaluate, register, fail)
    return Pipeline(
        name=config.pipeline_name,
        parameters=params.as_list(),
        steps=[preprocess, baseline, tuning, evaluate, gate],
        sagemaker_session=session,
    )
