"""The batch-scoring pipeline: every engine of the fleet scored by the model in service, ranked.

`get_batch_pipeline(session, config)` assembles one small function per step, like the training and
monitoring pipelines. Its one step, ScoreFleet, runs `containers/batch_score.py` on the project image: it
reads every file under `FleetDataUri` (C-MAPSS rows of each engine's recent cycles), loads the champion
under `ChampionUri` (`model.tar.gz` + `champion.json`), predicts each unit's RUL at its last cycle with
`rul.fleet` (the serving library, vectorised over units) and writes `fleet_predictions.csv`,
`maintenance_list.csv` (ranked, flagged within `MaintenanceThresholdCycles`) and `summary.json` under
`s3://<artifact bucket>/<output prefix><execution id>/`.

Why a processing job and not a batch transform job: a transform job splits its input by lines or records
into mini-batches, so one unit's window of cycles could be cut across two requests unless each file is
sent whole (and a file is limited by the request size); it also needs a SageMaker Model and an HTTP round
trip per mini-batch, and cannot check that a unit appears in one file only or rank the whole fleet. A
processing job reads the files whole, predicts with the same library as the endpoint and writes the
fleet-wide ranking in one place. The step is network-isolated, in the job VPC, KMS-encrypted, bounded by a
stopping condition and never cached (the fleet's data changes every day under the same prefix).
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

from pipeline_steps import batch_names as bnames
from pipeline_steps.batch_config import BatchPipelineConfig
from pipeline_steps.code import script_uri
from pipeline_steps.job_settings import JOB_NAME_BASE, library_input, network_config, retry_policies
from pipeline_steps.names import LIBRARY_PATH, PROCESSING_INSTANCE_TYPE
from pipeline_steps.session import definition_offline


@dataclass(frozen=True)
class BatchParameters:
    """One field per parameter of the batch pipeline, in declaration order."""

    fleet_data_uri: ParameterString
    champion_uri: ParameterString
    maintenance_threshold_cycles: ParameterInteger
    processing_instance_type: ParameterString

    def as_list(self) -> list[Parameter]:
        """The parameters in declaration order, as the pipeline takes them."""
        return [getattr(self, item.name) for item in fields(self)]


def declare_batch_parameters(config: BatchPipelineConfig) -> BatchParameters:
    """The batch parameters, their defaults from the config's URIs and `batch` settings."""
    return BatchParameters(
        fleet_data_uri=ParameterString(bnames.FLEET_DATA_URI, default_value=config.fleet_uri),
        champion_uri=ParameterString(bnames.CHAMPION_URI, default_value=config.champion_uri),
        maintenance_threshold_cycles=ParameterInteger(
            bnames.MAINTENANCE_THRESHOLD_CYCLES, default_value=config.batch.maintenance_threshold_cycles
        ),
        processing_instance_type=ParameterString(
            PROCESSING_INSTANCE_TYPE, default_value=config.batch.instance_type
        ),
    )


def batch_processor(
    session: PipelineSession, config: BatchPipelineConfig, params: BatchParameters
) -> ScriptProcessor:
    """`python3 batch_score.py` on the project image, isolated, with a volume and a time limit."""
    return ScriptProcessor(
        role=config.role_arn,
        image_uri=config.image_uri,
        command=["python3"],
        instance_count=1,
        instance_type=params.processing_instance_type,
        volume_size_in_gb=config.batch.volume_gb,
        volume_kms_key=config.kms_key_arn,
        output_kms_key=config.kms_key_arn,
        max_runtime_in_seconds=config.max_runtime_seconds,
        base_job_name=f"{JOB_NAME_BASE}-batch",
        sagemaker_session=session,
        env={"PYTHONPATH": LIBRARY_PATH},
        network_config=network_config(config),  # reads only the isolation and VPC fields
    )


def scores_uri(config: BatchPipelineConfig) -> Join:
    """`s3://<bucket>/<output prefix><execution id>`."""
    return Join(
        on="/",
        values=[
            "s3:/",
            config.artifact_bucket,
            config.output_prefix.rstrip("/"),
            ExecutionVariables.PIPELINE_EXECUTION_ID,
        ],
    )


def fleet_input(params: BatchParameters) -> ProcessingInput:
    """The fleet's recent cycles, every file under `FleetDataUri`."""
    return ProcessingInput(
        source=params.fleet_data_uri, destination=bnames.FLEET_PATH, input_name=bnames.FLEET_INPUT
    )


def champion_input(params: BatchParameters) -> ProcessingInput:
    """The model in service: `model.tar.gz` and `champion.json` under `ChampionUri`."""
    return ProcessingInput(
        source=params.champion_uri, destination=bnames.CHAMPION_PATH, input_name=bnames.CHAMPION_INPUT
    )


def score_arguments(params: BatchParameters) -> list:
    """batch_score.py's command line, its values from the parameters."""
    return [
        *("--threshold-cycles", params.maintenance_threshold_cycles.to_string()),
        *("--execution-id", ExecutionVariables.PIPELINE_EXECUTION_ID),
    ]


def score_step(
    session: PipelineSession, config: BatchPipelineConfig, params: BatchParameters
) -> ProcessingStep:
    """Every engine's RUL at its last cycle, and the ranked maintenance list."""
    output = ProcessingOutput(
        output_name=bnames.SCORES_OUTPUT, source=bnames.SCORES_PATH, destination=scores_uri(config)
    )
    step_args = batch_processor(session, config, params).run(
        code=script_uri(config.code_uri, bnames.BATCH_SCRIPT),
        inputs=[fleet_input(params), champion_input(params), library_input(config)],
        outputs=[output],
        arguments=score_arguments(params),
    )
    return ProcessingStep(name=bnames.SCORE_STEP, step_args=step_args, retry_policies=retry_policies())


def get_batch_pipeline(session: PipelineSession, config: BatchPipelineConfig) -> Pipeline:
    """The whole batch pipeline, rendered from the config; no AWS call is made while building it."""
    params = declare_batch_parameters(config)
    return Pipeline(
        name=config.pipeline_name,
        parameters=params.as_list(),
        steps=[score_step(session, config, params)],
        sagemaker_session=session,
    )


def render_batch_definition(config: BatchPipelineConfig) -> str:
    """The batch definition JSON (stable key order), made offline like the other definitions."""
    definition = definition_offline(config, get_batch_pipeline)
    return json.dumps(definition, indent=2, sort_keys=True)
