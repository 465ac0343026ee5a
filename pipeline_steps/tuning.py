"""The TuneModel step: the search space of the config's model family, the training estimator, the tuner.

Each family has its own ranges (`TUNING_RANGES`): gradient boosting searches its tree settings and a
learning rate of 0.02-0.2, the deep families Adam's learning rate (1e-4 to 1e-2) and their layer sizes.
The family is fixed when the definition is rendered (`config.pipeline.model_family`, a static
hyperparameter), not
a pipeline parameter, because the names of the searched hyperparameters differ by family and a run must
not pair one family with another's ranges. The ranges are copies of what `rul.hyperparameters` accepts
(`containers/` is not importable where the CDK app renders); a test keeps them inside its bounds and the
hyperparameters each family reads. Every trial stops after `pipeline.max_runtime_minutes` and the tuning
job as a whole after that times its rounds of the default budget.
"""

from __future__ import annotations

from sagemaker.inputs import TrainingInput
from sagemaker.sklearn.estimator import SKLearn
from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter
from sagemaker.workflow.entities import PipelineVariable
from sagemaker.workflow.functions import Join
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.steps import ProcessingStep, TuningStep

from pipeline_steps import names
from pipeline_steps.code import source_dir_uri
from pipeline_steps.config import PipelineConfig
from pipeline_steps.job_settings import (
    JOB_NAME_BASE,
    cache_config,
    models_prefix,
    output_uri,
    retry_policies,
    spot_arguments,
)
from pipeline_steps.parameters import PipelineParameters

# name -> (kind, low, high, scaling), per model family; inside rul.hyperparameters.BOUNDS (a test checks).
_DEEP_COMMON = {
    "learning_rate": ("continuous", 1e-4, 1e-2, "Logarithmic"),
    "units": ("integer", 16, 128, "Logarithmic"),
    "dropout": ("continuous", 0.0, 0.5, "Linear"),
    "batch_size": ("integer", 64, 512, "Logarithmic"),
}
TUNING_RANGES: dict[str, dict[str, tuple[str, float, float, str]]] = {
    "gbm": {
        "learning_rate": ("continuous", 0.02, 0.2, "Logarithmic"),
        "max_leaf_nodes": ("integer", 7, 63, "Auto"),
        "min_samples_leaf": ("integer", 10, 200, "Auto"),
        "max_features": ("continuous", 0.3, 1.0, "Auto"),
        "l2_regularization": ("continuous", 0.0, 5.0, "Auto"),
    },
    "cnn": {**_DEEP_COMMON, "filters": ("integer", 8, 64, "Logarithmic")},
    "lstm": dict(_DEEP_COMMON),
}


def hyperparameter_ranges(family: str) -> dict:
    """The search space of `family` as SDK parameter ranges."""
    kinds = {"continuous": ContinuousParameter, "integer": IntegerParameter}
    return {
        name: kinds[kind](low, high, scaling_type=scaling)
        for name, (kind, low, high, scaling) in TUNING_RANGES[family].items()
    }


def training_estimator(
    session: PipelineSession, config: PipelineConfig, params: PipelineParameters, step: str = names.TUNE_STEP
) -> SKLearn:
    """Script mode on the project image: train.py from the code bundle (an S3 source_dir, no upload);
    with `config.pipeline.spot_training`, on managed Spot capacity with `step`'s checkpoint URI."""
    static: dict[str, str | PipelineVariable] = {
        "model_family": config.pipeline.model_family,
        "seed": str(config.seed),
        **dict(config.static_hyperparameters),
    }
    return SKLearn(
        entry_point=names.TRAIN_SCRIPT,
        source_dir=source_dir_uri(config.code_uri),
        image_uri=config.image_uri,
        role=config.role_arn,
        instance_count=config.pipeline.training_instance_count,
        instance_type=params.training_instance_type,
        output_path=f"s3://{config.artifact_bucket}/{models_prefix(config)}",
        volume_kms_key=config.kms_key_arn,
        output_kms_key=config.kms_key_arn,
        subnets=list(config.subnet_ids) or None,
        security_group_ids=list(config.security_group_ids) or None,
        enable_network_isolation=config.network_isolation,
        encrypt_inter_container_traffic=True,
        max_run=config.max_runtime_seconds,
        base_job_name=f"{JOB_NAME_BASE}-train",
        hyperparameters=static,
        metric_definitions=names.metric_definitions(),
        sagemaker_session=session,
        **spot_arguments(config, step),
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
        hyperparameter_ranges=hyperparameter_ranges(config.pipeline.model_family),
        # sagemaker's list[dict[str, str | PipelineVariable]] is invariant: it refuses plain str dicts
        metric_definitions=names.metric_definitions(),  # type: ignore[arg-type]
        max_jobs=params.tuning_max_jobs,
        max_parallel_jobs=params.tuning_max_parallel_jobs,
        max_runtime_in_seconds=config.tuning_max_runtime_seconds,
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
    """`s3://<bucket>/models/<pipeline>/<best training job>/output/model.tar.gz` (kept)."""
    return tuning.get_top_model_s3_uri(
        top_k=0, s3_bucket=config.artifact_bucket, prefix=models_prefix(config)
    )
