"""The pipeline definition's steps, argument by argument: preprocess, baseline, tuning, evaluation, gate,
register, and the retry and cache settings of the job steps (on the parsed JSON of the default render)."""

from __future__ import annotations

import json
import re

import pytest
from definition_helpers import (
    JOB_STEPS,
    REFIT_MODEL,
    REGISTER_JSON_NAME,
    all_steps,
    default_render,
    execution_join,
    gets,
    inputs_by_name,
    output_get,
    outputs_by_name,
    registry_join,
    report_get,
)

from pipeline_steps import names
from pipeline_steps.config import local_config
from rul.metrics import metric_definitions


@pytest.fixture(scope="module")
def definition() -> dict:
    return json.loads(default_render()[0])


# --- preprocess ---------------------------------------------------------------------------------------


def test_preprocess_reads_raw_data_sharded_with_the_library(definition):
    step = all_steps(definition)[names.PREPROCESS_STEP]["Arguments"]
    inputs = inputs_by_name({"Arguments": step})
    raw = inputs[names.RAW_INPUT]
    assert raw["S3Uri"] == {"Get": f"Parameters.{names.INPUT_DATA_URI}"}
    assert raw["LocalPath"] == "/opt/ml/processing/input"
    assert raw["S3DataDistributionType"] == "ShardedByS3Key"
    # The same prefix, whole on every instance: the official test/RUL pair is never split by sharding.
    official = inputs[names.OFFICIAL_INPUT]
    assert official["S3Uri"] == raw["S3Uri"]
    assert official["LocalPath"] == "/opt/ml/processing/official"
    assert official["S3DataDistributionType"] == "FullyReplicated"
    assert inputs[names.LIBRARY_INPUT]["S3Uri"] == "s3://local-artifacts/code/000000000000/src/"
    assert inputs[names.LIBRARY_INPUT]["LocalPath"] == "/opt/ml/processing/input/lib"
    assert inputs[names.CODE_INPUT]["S3Uri"] == "s3://local-artifacts/code/000000000000/src/preprocess.py"
    assert inputs[names.CODE_INPUT]["LocalPath"] == names.CODE_PATH
    assert step["Environment"] == {"PYTHONPATH": "/opt/ml/processing/input/lib"}
    app = step["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["python3", "/opt/ml/processing/input/code/preprocess.py"]
    assert app["ContainerArguments"] == [
        *("--subset", {"Get": f"Parameters.{names.SUBSET}"}),
        *("--data-version", {"Get": f"Parameters.{names.DATA_VERSION}"}),
    ]
    cluster = step["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceCount"] == {"Get": f"Parameters.{names.PROCESSING_INSTANCE_COUNT}"}
    assert cluster["InstanceType"] == {"Get": f"Parameters.{names.PROCESSING_INSTANCE_TYPE}"}


def test_preprocess_outputs_have_explicit_per_execution_destinations(definition):
    outputs = outputs_by_name(all_steps(definition)[names.PREPROCESS_STEP])
    assert list(outputs) == list(names.PREPROCESS_OUTPUTS)
    for name, output in outputs.items():
        assert output["LocalPath"] == f"/opt/ml/processing/{name}"
        # The manifest is referred to by the registered package: kept under registry/, the rest expires.
        join = registry_join if name == names.MANIFEST_OUTPUT else execution_join
        assert output["S3Uri"] == join(names.PREPROCESS_STEP, name), name


# --- baseline -----------------------------------------------------------------------------------------


def test_data_quality_baseline_is_our_own_job_on_the_project_image(definition):
    step = all_steps(definition)[names.BASELINE_STEP]
    args = step["Arguments"]
    assert args["AppSpecification"]["ImageUri"] == local_config().image_uri
    assert args["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "/opt/ml/processing/input/code/baseline.py",
    ]
    assert args["AppSpecification"]["ContainerArguments"] == [
        *("--dataset-dir", names.BASELINE_DATASET_PATH),
        *("--output-dir", names.DATA_QUALITY_OUTPUT_PATH),
        "--header",
    ]
    inputs = inputs_by_name(step)
    assert inputs[names.BASELINE_DATASET_INPUT]["S3Uri"] == output_get(names.BASELINE_OUTPUT)
    assert inputs[names.CODE_INPUT]["S3Uri"] == "s3://local-artifacts/code/000000000000/src/baseline.py"
    assert "model-monitor" not in json.dumps(step)
    (output,) = outputs_by_name(step).values()
    assert output["S3Uri"] == registry_join(names.BASELINE_STEP, "baseline")


# --- tuning -------------------------------------------------------------------------------------------


def test_tuning_objective_budget_and_ranges(definition):
    config = all_steps(definition)[names.TUNE_STEP]["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"MetricName": "validation:rmse", "Type": "Minimize"}
    assert config["Strategy"] == "Bayesian"
    assert config["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": {"Get": f"Parameters.{names.TUNING_MAX_JOBS}"},
        "MaxParallelTrainingJobs": {"Get": f"Parameters.{names.TUNING_MAX_PARALLEL_JOBS}"},
        # 60 minutes per trial, 3 rounds of the default budget (6 trials, 2 at a time).
        "MaxRuntimeInSeconds": 3 * 3600,
    }
    ranges = config["ParameterRanges"]
    continuous = {r["Name"]: r for r in ranges["ContinuousParameterRanges"]}
    integer = {r["Name"]: r for r in ranges["IntegerParameterRanges"]}
    assert set(continuous) == {"learning_rate", "max_features", "l2_regularization"}
    assert set(integer) == {"max_leaf_nodes", "min_samples_leaf"}
    assert continuous["learning_rate"] == {
        "Name": "learning_rate",
        "MinValue": "0.02",
        "MaxValue": "0.2",
        "ScalingType": "Logarithmic",
    }
    assert (integer["max_leaf_nodes"]["MinValue"], integer["max_leaf_nodes"]["MaxValue"]) == ("7", "63")


def test_tuning_channels_are_preprocess_outputs(definition):
    training = all_steps(definition)[names.TUNE_STEP]["Arguments"]["TrainingJobDefinition"]
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in training["InputDataConfig"]
    }
    assert channels[names.TRAIN_CHANNEL] == output_get(names.TRAIN_OUTPUT)
    assert channels[names.VALIDATION_CHANNEL] == output_get(names.VALIDATION_OUTPUT)
    # Network isolation: the SDK ships source_dir as a "code" channel instead of downloading it.
    assert channels[names.CODE_CHANNEL] == "s3://local-artifacts/code/000000000000/sourcedir.tar.gz"


def test_training_is_script_mode_on_the_project_image(definition):
    training = all_steps(definition)[names.TUNE_STEP]["Arguments"]["TrainingJobDefinition"]
    algorithm = training["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == local_config().image_uri
    assert algorithm["MetricDefinitions"] == metric_definitions("validation")
    static = training["StaticHyperParameters"]
    assert static["model_family"] == '"gbm"'  # a render-time choice: each family has its own ranges
    assert static["seed"] == '"0"'
    assert static["sagemaker_program"] == '"train.py"'
    assert static["sagemaker_submit_directory"] == '"/opt/ml/input/data/code/sourcedir.tar.gz"'
    assert training["OutputDataConfig"]["S3OutputPath"] == "s3://local-artifacts/models/turbofan-rul"
    assert training["HyperParameterTuningResourceConfig"]["InstanceType"] == {
        "Get": f"Parameters.{names.TRAINING_INSTANCE_TYPE}"
    }
    assert training["EnableNetworkIsolation"] is True


def test_metric_regexes_read_the_lines_train_prints(definition):
    training = all_steps(definition)[names.TUNE_STEP]["Arguments"]["TrainingJobDefinition"]
    log = (
        "validation:rmse=13.2500\nvalidation:mae=9.1000\nvalidation:r2=0.8000\n"
        "validation:phm08_score=245.1\nvalidation:phm08_score_per_100_units=49.02"
    )
    values = {
        d["Name"]: re.search(d["Regex"], log).group(1)
        for d in training["AlgorithmSpecification"]["MetricDefinitions"]
    }
    assert values == {
        "validation:rmse": "13.2500",
        "validation:mae": "9.1000",
        "validation:r2": "0.8000",
        "validation:phm08_score": "245.1",
        "validation:phm08_score_per_100_units": "49.02",
    }


# --- evaluation, gate, register, fail -----------------------------------------------------------------


def test_evaluate_inputs_arguments_and_report(definition):
    step = all_steps(definition)[names.EVALUATE_STEP]
    inputs = inputs_by_name(step)
    assert inputs[names.MODEL_INPUT] == {**inputs[names.MODEL_INPUT], "S3Uri": REFIT_MODEL}
    assert inputs[names.MODEL_INPUT]["LocalPath"] == "/opt/ml/processing/model"
    assert inputs[names.TEST_INPUT]["S3Uri"] == output_get(names.TEST_OUTPUT)
    assert inputs[names.CHAMPION_INPUT]["S3Uri"] == {"Get": f"Parameters.{names.CHAMPION_MODEL_URI}"}
    assert inputs[names.CHAMPION_INPUT]["LocalPath"] == "/opt/ml/processing/champion"
    assert inputs[names.LIBRARY_INPUT]["LocalPath"] == "/opt/ml/processing/input/lib"
    app = step["Arguments"]["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["python3", "/opt/ml/processing/input/code/evaluate.py"]
    flags = app["ContainerArguments"][0::2]
    assert flags == ["--rmse-threshold", "--score-threshold", "--champion-tolerance"]
    assert [gets(value) for value in app["ContainerArguments"][1::2]] == [
        {f"Parameters.{names.RMSE_THRESHOLD}"},
        {f"Parameters.{names.SCORE_THRESHOLD}"},
        {f"Parameters.{names.CHAMPION_TOLERANCE}"},
    ]
    assert step["PropertyFiles"] == [
        {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]
    (output,) = outputs_by_name(step).values()
    assert output["S3Uri"] == registry_join(names.EVALUATE_STEP, "evaluation")


def test_quality_gate_conditions(definition):
    conditions = all_steps(definition)[names.GATE_STEP]["Arguments"]["Conditions"]
    assert [(c["Type"], c["LeftValue"], c["RightValue"]) for c in conditions] == [
        (
            "LessThanOrEqualTo",
            report_get(names.RMSE_JSON_PATH),
            {"Get": f"Parameters.{names.RMSE_THRESHOLD}"},
        ),
        (
            "LessThanOrEqualTo",
            report_get(names.SCORE_JSON_PATH),
            {"Get": f"Parameters.{names.SCORE_THRESHOLD}"},
        ),
        ("LessThanOrEqualTo", report_get(names.RMSE_JSON_PATH), report_get(names.ALLOWED_RMSE_JSON_PATH)),
    ]


def test_fail_message_carries_values_thresholds_and_summary(definition):
    message = all_steps(definition)[names.FAIL_STEP]["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    json_paths = [v["Std:JsonGet"]["Path"] for v in message if isinstance(v, dict) and "Std:JsonGet" in v]
    assert json_paths == [
        names.PROTOCOL_JSON_PATH,
        names.RMSE_JSON_PATH,
        names.SCORE_JSON_PATH,
        names.GATE_SUMMARY_JSON_PATH,
    ]
    assert gets(message) >= {
        f"Parameters.{names.RMSE_THRESHOLD}",
        f"Parameters.{names.SCORE_THRESHOLD}",
        f"Parameters.{names.CHAMPION_TOLERANCE}",
    }


def test_register_model_package(definition):
    args = all_steps(definition)[REGISTER_JSON_NAME]["Arguments"]
    assert args["ModelPackageGroupName"] == "turbofan-rul"
    assert args["ModelApprovalStatus"] == {"Get": f"Parameters.{names.MODEL_APPROVAL_STATUS}"}
    (container,) = args["InferenceSpecification"]["Containers"]
    assert container["Image"] == local_config().image_uri
    assert container["ModelDataUrl"] == REFIT_MODEL
    assert args["InferenceSpecification"]["SupportedContentTypes"] == ["text/csv", "application/json"]
    statistics = args["ModelMetrics"]["ModelQuality"]["Statistics"]
    evaluation_output = (
        f"Steps.{names.EVALUATE_STEP}.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"
    )
    assert statistics["S3Uri"] == {
        "Std:Join": {"On": "/", "Values": [{"Get": evaluation_output}, "evaluation.json"]}
    }
    manifest_output = (
        f"Steps.{names.PREPROCESS_STEP}.ProcessingOutputConfig.Outputs['manifest'].S3Output.S3Uri"
    )
    assert args["CustomerMetadataProperties"] == {
        names.DATA_MANIFEST_METADATA_KEY: {"Get": manifest_output},
        names.DATA_VERSION_METADATA_KEY: {"Get": f"Parameters.{names.DATA_VERSION}"},
    }
    quality = args["DriftCheckBaselines"]["ModelDataQuality"]
    baseline_output = f"Steps.{names.BASELINE_STEP}.ProcessingOutputConfig.Outputs['baseline'].S3Output.S3Uri"
    for kind, file_name in (("Statistics", "statistics.json"), ("Constraints", "constraints.json")):
        assert quality[kind]["S3Uri"] == {
            "Std:Join": {"On": "/", "Values": [{"Get": baseline_output}, file_name]}
        }, kind
    assert not any(name.startswith(f"{names.REGISTER_STEP}-Repack") for name in all_steps(definition))


def test_retry_policies_and_cache_on_job_steps(definition):
    steps = all_steps(definition)
    for name in JOB_STEPS:
        kinds = [tuple(policy["ExceptionType"]) for policy in steps[name]["RetryPolicies"]]
        assert kinds == [
            ("Step.SERVICE_FAULT", "Step.THROTTLING"),
            ("SageMaker.CAPACITY_ERROR", "SageMaker.RESOURCE_LIMIT"),
        ], name
        assert all(policy["BackoffRate"] > 1 for policy in steps[name]["RetryPolicies"])
    for name in JOB_STEPS:
        assert steps[name]["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}, name
    # A register step accepts only step-level (API) retries.
    register_kinds = [tuple(p["ExceptionType"]) for p in steps[REGISTER_JSON_NAME]["RetryPolicies"]]
    assert register_kinds == [("Step.SERVICE_FAULT", "Step.THROTTLING")]
