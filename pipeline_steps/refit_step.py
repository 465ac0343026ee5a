"""The RefitModel step: the best tuning trial's hyperparameters, retrained on every training unit.

Tuning fits each trial on the train units and scores it on the validation units, so the best trial's own
model never saw those (nor the held-out units). `RefitModel` is one more training job of the tuner's
estimator (same image, static hyperparameters, network and stopping condition) whose tuned
hyperparameters are `Steps.TuneModel.BestTrainingJob.TunedHyperParameters['<name>']` properties, one per
range of the model family, with `final_refit=true`, which makes train.py fit on all of its channels:
train, validation and holdout (the held-out units, whole, when the official test set is what evaluates;
empty otherwise, since then they are the evaluation units), plus `trial`: the best trial's own
`model.tar.gz`, that very fit on the train units, whose validation residuals calibrate the intervals
without fitting it again (train.py refits from scratch, saying why, if it does not match).
Its `ModelArtifacts.S3ModelArtifacts` is the model that is evaluated, registered and served.
Its cache key holds the resolved hyperparameters and the input URIs,
so new data or a different best trial trains again.
"""

from __future__ import annotations

from sagemaker.inputs import TrainingInput
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import Properties
from sagemaker.workflow.steps import ProcessingStep, TrainingStep, TuningStep

from pipeline_steps import names
from pipeline_steps.config import PipelineConfig
from pipeline_steps.job_settings import JOB_NAME_BASE, cache_config, output_uri, retry_policies
from pipeline_steps.parameters import PipelineParameters
from pipeline_steps.tuning import TUNING_RANGES, top_model_uri, training_estimator

REFIT_CHANNELS = (
    (names.TRAIN_CHANNEL, names.TRAIN_OUTPUT),
    (names.VALIDATION_CHANNEL, names.VALIDATION_OUTPUT),
    (names.HOLDOUT_CHANNEL, names.HOLDOUT_OUTPUT),
)


def tuned_hyperparameters(family: str, tuning: TuningStep) -> dict[str, Properties]:
    """Each tuned hyperparameter of `family`, read from the best training job when the pipeline runs."""
    best = tuning.properties.BestTrainingJob.TunedHyperParameters
    return {name: best[name] for name in sorted(TUNING_RANGES[family])}


def refit_step(
    session: PipelineSession,
    config: PipelineConfig,
    params: PipelineParameters,
    preprocess: ProcessingStep,
    tuning: TuningStep,
) -> TrainingStep:
    """Train the best trial's hyperparameters on the train, validation and holdout units."""
    estimator = training_estimator(session, config, params, step=names.REFIT_STEP)
    estimator.base_job_name = f"{JOB_NAME_BASE}-refit"
    # As the tuner's trials: no Debugger hook or profiler output (a tuning job's trials have none).
    estimator.debugger_hook_config, estimator.disable_profiler = False, True
    # Framework.set_hyperparameters JSON-encodes and hyperparameters() encodes again at fit time, so
    # "true" would arrive as '"\\"true\\""'; the raw dict is what the constructor's values go into.
    estimator._hyperparameters.update(
        {**tuned_hyperparameters(config.pipeline.model_family, tuning), names.REFIT_HYPERPARAMETER: "true"}
    )
    channels = {
        channel: TrainingInput(output_uri(preprocess, output), content_type="text/csv")
        for channel, output in REFIT_CHANNELS
    }
    channels[names.TRIAL_CHANNEL] = TrainingInput(
        top_model_uri(config, tuning), content_type="application/x-gzip"
    )
    return TrainingStep(
        name=names.REFIT_STEP,
        step_args=estimator.fit(inputs=channels),
        cache_config=cache_config(config),
        retry_policies=retry_policies(),
    )


def refit_model_uri(refit: TrainingStep) -> Properties:
    """The refit model's `model.tar.gz` (under the kept models prefix)."""
    return refit.properties.ModelArtifacts.S3ModelArtifacts
