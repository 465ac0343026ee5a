"""Tests of the SageMaker pipeline definition, on the parsed JSON of an offline render.

The default definition is rendered once per module under a network guard (socket connects refused,
botocore `before-send` and `Endpoint.make_request` recorded) so every test also proves rendering is
offline. Further tests cover the secured variant (KMS, VPC), determinism, the source bundle, the config
validation and the command line.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import socket
import tarfile
from pathlib import Path

import boto3
import botocore.endpoint
import pytest

from pipeline_steps import names
from pipeline_steps.__main__ import main as cli_main
from pipeline_steps.code import (
    SOURCE_BUNDLE_NAME,
    build_source_bundle,
    code_uri_for,
    library_uri,
    script_uri,
    source_dir_uri,
)
from pipeline_steps.config import PipelineConfig, local_config
from pipeline_steps.render import find_timestamped_values, render_definition
from pipeline_steps.session import disable_sdk_telemetry, offline_session
from pipeline_steps.tuning import TUNING_RANGES
from rul.data import SUBSETS
from rul.hyperparameters import MODEL_FAMILIES
from rul.metrics import metric_definitions, metric_regex

CONTAINERS_DIR = Path(__file__).resolve().parent.parent / "containers"
KMS_KEY = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555"
SECURE = {
    "kms_key_arn": KMS_KEY,
    "subnet_ids": ("subnet-0aaa", "subnet-0bbb"),
    "security_group_ids": ("sg-0ccc",),
}
JOB_STEPS = (
    names.PREPROCESS_STEP,
    names.BASELINE_STEP,
    names.TUNE_STEP,
    names.REFIT_STEP,
    names.EVALUATE_STEP,
)
PROCESSING_STEPS = (names.PREPROCESS_STEP, names.BASELINE_STEP, names.EVALUATE_STEP)
REGISTER_JSON_NAME = names.REGISTER_STEP_JSON_NAME


@contextlib.contextmanager
def network_guard():
    """Refuse sockets and record any botocore request; yields the list of attempted calls."""
    attempts: list[str] = []

    def refuse(*args, **_kwargs):
        attempts.append(f"socket {args[1:] if len(args) > 1 else args}")
        raise OSError("network access during rendering")

    def record_send(request, **_kwargs):
        attempts.append(f"before-send {request.method} {request.url}")
        raise RuntimeError("AWS API call during rendering")

    real_make_request = botocore.endpoint.Endpoint.make_request

    def record_request(self, operation_model, request_dict):
        attempts.append(f"make_request {operation_model.name}")
        return real_make_request(self, operation_model, request_dict)

    real_session = boto3.Session

    def hooked_session(*args, **kwargs):
        session = real_session(*args, **kwargs)
        session.events.register("before-send", record_send)
        return session

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        patch.setattr(botocore.endpoint.Endpoint, "make_request", record_request)
        patch.setattr(boto3, "Session", hooked_session)
        yield attempts


def guarded_render(config: PipelineConfig) -> tuple[str, list[str]]:
    with network_guard() as attempts:
        text = render_definition(config)
    return text, attempts


@pytest.fixture(scope="module")
def rendered() -> tuple[str, list[str]]:
    return guarded_render(local_config())


@pytest.fixture(scope="module")
def definition(rendered) -> dict:
    return json.loads(rendered[0])


@pytest.fixture(scope="module")
def secure_definition() -> dict:
    text, attempts = guarded_render(local_config(**SECURE))
    assert attempts == []
    return json.loads(text)


def all_steps(definition: dict) -> dict[str, dict]:
    """Every step by name, including those nested in a condition's branches."""
    found = {}
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop()
        found[step["Name"]] = step
        if step["Type"] == "Condition":
            pending += step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"]
    return found


def gets(value) -> set[str]:
    """All `{"Get": ...}` references inside a JSON value."""
    if isinstance(value, dict):
        found = {value["Get"]} if isinstance(value.get("Get"), str) else set()
        return found.union(*(gets(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(gets(item) for item in value))
    return set()


def step_refs(step: dict) -> set[str]:
    return {ref.split(".")[1] for ref in gets(step) if ref.startswith("Steps.")}


def inputs_by_name(step: dict) -> dict[str, dict]:
    return {item["InputName"]: item["S3Input"] for item in step["Arguments"]["ProcessingInputs"]}


def outputs_by_name(step: dict) -> dict[str, dict]:
    outputs = step["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    return {item["OutputName"]: item["S3Output"] for item in outputs}


def output_get(output: str) -> dict:
    return {"Get": f"Steps.{names.PREPROCESS_STEP}.ProcessingOutputConfig.Outputs['{output}'].S3Output.S3Uri"}


def report_get(path: str) -> dict:
    file_ref = {"Get": f"Steps.{names.EVALUATE_STEP}.PropertyFiles.{names.EVALUATION_PROPERTY_FILE}"}
    return {"Std:JsonGet": {"Path": path, "PropertyFile": file_ref}}


def execution_join(step: str, *parts: str) -> dict:
    values = ["s3:/", "local-artifacts", "turbofan-rul", {"Get": "Execution.PipelineExecutionId"}, step]
    return {"Std:Join": {"On": "/", "Values": [*values, *parts]}}


def registry_join(step: str, *parts: str) -> dict:
    values = ["s3:/", "local-artifacts", "registry", "turbofan-rul", {"Get": "Execution.PipelineExecutionId"}]
    return {"Std:Join": {"On": "/", "Values": [*values, step, *parts]}}


# The model evaluated, registered and served: the refit of the best trial on all training units.
REFIT_MODEL = {"Get": f"Steps.{names.REFIT_STEP}.ModelArtifacts.S3ModelArtifacts"}


# --- rendering is offline and deterministic ---------------------------------------------------------


def test_rendering_makes_no_network_or_aws_call(rendered):
    assert rendered[1] == []


def test_network_guard_catches_an_aws_call():
    with network_guard() as attempts, pytest.raises(RuntimeError):
        boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1").client(
            "sts"
        ).get_caller_identity()
    assert attempts[0] == "make_request GetCallerIdentity"
    assert attempts[1].startswith("before-send POST https://sts.")


def test_rendering_twice_gives_identical_text(rendered):
    again, attempts = guarded_render(local_config())
    assert attempts == []
    assert again == rendered[0]


def test_no_clock_dependent_values(definition):
    assert find_timestamped_values(definition) == []
    static = all_steps(definition)[names.TUNE_STEP]["Arguments"]["TrainingJobDefinition"]
    assert static["StaticHyperParameters"]["sagemaker_job_name"] == '"turbofan-rul-train"'


# --- structure ----------------------------------------------------------------------------------------


def test_top_level_steps_and_types(definition):
    assert [(step["Name"], step["Type"]) for step in definition["Steps"]] == [
        (names.PREPROCESS_STEP, "Processing"),
        (names.BASELINE_STEP, "Processing"),
        (names.TUNE_STEP, "Tuning"),
        (names.REFIT_STEP, "Training"),
        (names.EVALUATE_STEP, "Processing"),
        (names.GATE_STEP, "Condition"),
    ]


def test_every_named_step_is_rendered(definition):
    expected = {names.REGISTER_STEP_JSON_NAME if n == names.REGISTER_STEP else n for n in names.STEP_NAMES}
    assert set(all_steps(definition)) == expected


def test_condition_branches(definition):
    gate = all_steps(definition)[names.GATE_STEP]["Arguments"]
    assert [(s["Name"], s["Type"]) for s in gate["IfSteps"]] == [(names.DATA_VERSION_CHECK_STEP, "Condition")]
    assert [(s["Name"], s["Type"]) for s in gate["ElseSteps"]] == [(names.FAIL_STEP, "Fail")]
    check = gate["IfSteps"][0]["Arguments"]
    assert check["IfSteps"] == []  # the same data version as the newest package: succeed, register nothing
    assert [(s["Name"], s["Type"]) for s in check["ElseSteps"]] == [(REGISTER_JSON_NAME, "RegisterModel")]
    assert check["Conditions"] == [
        {
            "Type": "Equals",
            "LeftValue": {"Get": f"Parameters.{names.DATA_VERSION}"},
            "RightValue": {"Get": f"Parameters.{names.REGISTERED_DATA_VERSION}"},
        }
    ]


def test_steps_are_wired_by_properties_not_depends_on(definition):
    steps = all_steps(definition)
    assert all("DependsOn" not in step for step in steps.values())
    assert step_refs(steps[names.PREPROCESS_STEP]) == set()
    assert step_refs(steps[names.BASELINE_STEP]) == {names.PREPROCESS_STEP}
    assert step_refs(steps[names.TUNE_STEP]) == {names.PREPROCESS_STEP}
    assert step_refs(steps[names.REFIT_STEP]) == {names.PREPROCESS_STEP, names.TUNE_STEP}
    assert step_refs(steps[names.EVALUATE_STEP]) == {names.PREPROCESS_STEP, names.REFIT_STEP}
    assert step_refs(steps[REGISTER_JSON_NAME]) == {
        names.PREPROCESS_STEP,
        names.BASELINE_STEP,
        names.REFIT_STEP,
        names.EVALUATE_STEP,
    }
    assert step_refs(steps[names.FAIL_STEP]) == {names.EVALUATE_STEP}


def test_every_declared_parameter_is_used(definition):
    declared = [parameter["Name"] for parameter in definition["Parameters"]]
    assert declared == list(names.PARAMETER_NAMES)
    used = {ref.removeprefix("Parameters.") for ref in gets(definition["Steps"]) if ref.startswith("Param")}
    assert used == set(declared)


def test_parameter_defaults(definition):
    defaults = {parameter["Name"]: parameter["DefaultValue"] for parameter in definition["Parameters"]}
    assert defaults == {
        names.INPUT_DATA_URI: "s3://local-data/raw/",
        names.SUBSET: "FD001",
        names.DATA_VERSION: "unversioned",
        names.REGISTERED_DATA_VERSION: "",
        names.PROCESSING_INSTANCE_TYPE: "ml.m5.large",
        names.PROCESSING_INSTANCE_COUNT: 1,
        names.TRAINING_INSTANCE_TYPE: "ml.m5.xlarge",
        names.MAX_TUNING_JOBS: 6,
        names.MAX_PARALLEL_TUNING_JOBS: 2,
        names.RMSE_THRESHOLD: 20.0,
        names.SCORE_THRESHOLD: 500.0,
        names.CHAMPION_TOLERANCE: 1.0,
        names.CHAMPION_MODEL_URI: "s3://local-artifacts/champion/",
        names.MODEL_APPROVAL_STATUS: "PendingManualApproval",
    }


def test_shared_constants_match_the_container_library():
    assert tuple(SUBSETS) == names.SUBSETS
    assert tuple(MODEL_FAMILIES) == names.MODEL_FAMILIES
    assert metric_regex(names.OBJECTIVE_METRIC) == names.OBJECTIVE_METRIC_REGEX
    assert names.metric_definitions("validation") == metric_definitions("validation")


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
        "MaxNumberOfTrainingJobs": {"Get": f"Parameters.{names.MAX_TUNING_JOBS}"},
        "MaxParallelTrainingJobs": {"Get": f"Parameters.{names.MAX_PARALLEL_TUNING_JOBS}"},
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


# --- final refit --------------------------------------------------------------------------------------


def test_refit_trains_the_best_trials_hyperparameters_on_every_training_channel(definition):
    steps = all_steps(definition)
    refit = steps[names.REFIT_STEP]["Arguments"]
    tuning = steps[names.TUNE_STEP]["Arguments"]["TrainingJobDefinition"]
    hyperparameters = refit["HyperParameters"]
    best = f"Steps.{names.TUNE_STEP}.BestTrainingJob.TunedHyperParameters"
    for name in TUNING_RANGES["gbm"]:
        assert hyperparameters[name] == {"Std:Join": {"On": "", "Values": [{"Get": f"{best}['{name}']"}]}}
    assert hyperparameters[names.REFIT_HYPERPARAMETER] == '"true"'
    tuned = set(TUNING_RANGES["gbm"]) | {names.REFIT_HYPERPARAMETER}
    static = {k: v for k, v in tuning["StaticHyperParameters"].items() if not k.startswith("sagemaker_")}
    assert {
        k: v for k, v in hyperparameters.items() if k not in tuned and not k.startswith("sagemaker_")
    } == static
    assert hyperparameters["sagemaker_program"] == tuning["StaticHyperParameters"]["sagemaker_program"]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in refit["InputDataConfig"]}
    assert channels == {
        names.TRAIN_CHANNEL: output_get(names.TRAIN_OUTPUT),
        names.VALIDATION_CHANNEL: output_get(names.VALIDATION_OUTPUT),
        names.HOLDOUT_CHANNEL: output_get(names.HOLDOUT_OUTPUT),
        names.CODE_CHANNEL: tuning_code_channel(tuning),
    }
    for key in ("AlgorithmSpecification", "OutputDataConfig", "StoppingCondition", "RoleArn"):
        assert refit[key] == tuning[key], key
    assert refit["ResourceConfig"]["InstanceType"] == {"Get": f"Parameters.{names.TRAINING_INSTANCE_TYPE}"}
    assert "DebugHookConfig" not in refit
    assert refit["ProfilerConfig"] == {"DisableProfiler": True}


def tuning_code_channel(tuning: dict) -> str:
    (code,) = [c for c in tuning["InputDataConfig"] if c["ChannelName"] == names.CODE_CHANNEL]
    return code["DataSource"]["S3DataSource"]["S3Uri"]


@pytest.mark.parametrize("family", ["cnn", "lstm"])
def test_refit_reads_each_familys_own_tuned_hyperparameters(family):
    text, attempts = guarded_render(local_config(model_family=family))
    assert attempts == []
    refit = all_steps(json.loads(text))[names.REFIT_STEP]["Arguments"]["HyperParameters"]
    best = f"Steps.{names.TUNE_STEP}.BestTrainingJob.TunedHyperParameters"
    tuned = {gets(value).pop().removeprefix(best) for value in refit.values() if gets(value)}
    assert tuned == {f"['{name}']" for name in TUNING_RANGES[family]}
    assert refit["model_family"] == json.dumps(family)


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


# --- security settings --------------------------------------------------------------------------------


def test_default_config_isolates_without_vpc_or_keys(definition):
    steps = all_steps(definition)
    for name in PROCESSING_STEPS:
        network = steps[name]["Arguments"]["NetworkConfig"]
        assert network == {"EnableInterContainerTrafficEncryption": True, "EnableNetworkIsolation": True}
    assert "KmsKeyId" not in json.dumps(definition)


def test_secure_config_sets_vpc_isolation_and_kms_everywhere(secure_definition):
    steps = all_steps(secure_definition)
    vpc = {"SecurityGroupIds": ["sg-0ccc"], "Subnets": ["subnet-0aaa", "subnet-0bbb"]}
    for name in PROCESSING_STEPS:
        args = steps[name]["Arguments"]
        assert args["NetworkConfig"]["VpcConfig"] == vpc, name
        assert args["NetworkConfig"]["EnableNetworkIsolation"] is True, name
        assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KMS_KEY, name
        assert args["ProcessingOutputConfig"]["KmsKeyId"] == KMS_KEY, name
    training = steps[names.TUNE_STEP]["Arguments"]["TrainingJobDefinition"]
    assert training["VpcConfig"] == vpc
    assert training["EnableNetworkIsolation"] is True
    assert training["HyperParameterTuningResourceConfig"]["VolumeKmsKeyId"] == KMS_KEY
    assert training["OutputDataConfig"]["KmsKeyId"] == KMS_KEY
    refit = steps[names.REFIT_STEP]["Arguments"]
    assert refit["VpcConfig"] == vpc
    assert refit["EnableNetworkIsolation"] is True
    assert refit["EnableInterContainerTrafficEncryption"] is True
    assert refit["ResourceConfig"]["VolumeKmsKeyId"] == KMS_KEY
    assert refit["OutputDataConfig"]["KmsKeyId"] == KMS_KEY


def test_network_isolation_can_be_turned_off():
    text, attempts = guarded_render(local_config(enable_network_isolation=False))
    assert attempts == []
    steps = all_steps(json.loads(text))
    training = steps[names.TUNE_STEP]["Arguments"]["TrainingJobDefinition"]
    assert "EnableNetworkIsolation" not in training  # the SDK omits a false flag
    assert steps[names.PREPROCESS_STEP]["Arguments"]["NetworkConfig"]["EnableNetworkIsolation"] is False
    # Without isolation the job downloads source_dir itself: no "code" channel.
    assert [c["ChannelName"] for c in training["InputDataConfig"]] == ["train", "validation"]
    submit = json.loads(training["StaticHyperParameters"]["sagemaker_submit_directory"])
    assert submit == "s3://local-artifacts/code/000000000000/sourcedir.tar.gz"


def spot_jobs(definition: dict) -> dict[str, dict]:
    """The training job request of the TuneModel trials and of RefitModel."""
    steps = all_steps(definition)
    return {
        names.TUNE_STEP: steps[names.TUNE_STEP]["Arguments"]["TrainingJobDefinition"],
        names.REFIT_STEP: steps[names.REFIT_STEP]["Arguments"],
    }


def test_spot_training_is_off_by_default(definition):
    for name, job in spot_jobs(definition).items():
        assert "EnableManagedSpotTraining" not in job and "CheckpointConfig" not in job, name
        assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}, name


def test_spot_training_renders_wait_and_a_fixed_checkpoint_uri_per_step():
    text, attempts = guarded_render(local_config(spot_training=True, spot_max_wait_minutes=150))
    assert attempts == []
    for name, job in spot_jobs(json.loads(text)).items():
        assert job["EnableManagedSpotTraining"] is True, name
        assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 9000}
        # No execution id: CheckpointConfig is in a training step's cache key, and a rerun must find it.
        assert job["CheckpointConfig"] == {
            "S3Uri": f"s3://local-artifacts/turbofan-rul/checkpoints/{name}/",
            "LocalPath": "/opt/ml/checkpoints",
        }


# --- code bundle --------------------------------------------------------------------------------------


def test_source_bundle_is_byte_identical_across_builds(tmp_path):
    first = build_source_bundle(CONTAINERS_DIR, tmp_path / "a")
    second = build_source_bundle(CONTAINERS_DIR, tmp_path / "b")
    assert first.tarball.read_bytes() == second.tarball.read_bytes()
    assert first.version == second.version == hashlib.sha256(first.tarball.read_bytes()).hexdigest()[:12]
    assert first.tarball.name == SOURCE_BUNDLE_NAME


def test_source_bundle_contents_and_metadata(tmp_path):
    bundle = build_source_bundle(CONTAINERS_DIR, tmp_path)
    assert {"preprocess.py", "train.py", "evaluate.py", "rul/__init__.py", "rul/metrics.py"} <= set(
        bundle.files
    )
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in bundle.files)
    assert list(bundle.files) == sorted(bundle.files)
    raw = bundle.tarball.read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip header mtime
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as archive:
        members = archive.getmembers()
    assert tuple(member.name for member in members) == bundle.files
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert {m.mode for m in members} <= {0o644, 0o755}


def test_source_bundle_leaves_out_caches_and_compiled_files(tmp_path):
    source = tmp_path / "src"
    (source / "rul" / "__pycache__").mkdir(parents=True)
    (source / "train.py").write_text("print('train')\n")
    (source / "rul" / "__init__.py").write_text("")
    (source / "rul" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\0")
    (source / "rul" / "stale.pyc").write_bytes(b"\0")
    (source / ".pytest_cache").mkdir()
    (source / ".pytest_cache" / "README.md").write_text("cache")
    assert build_source_bundle(source, tmp_path / "out").files == ("rul/__init__.py", "train.py")


def test_source_bundle_version_follows_content(tmp_path):
    source = tmp_path / "src"
    (source / "rul").mkdir(parents=True)
    (source / "train.py").write_text("print('a')\n")
    (source / "rul" / "__init__.py").write_text("")
    first = build_source_bundle(source, tmp_path / "one")
    (source / "train.py").write_text("print('b')\n")
    assert build_source_bundle(source, tmp_path / "two").version != first.version


def test_code_uri_helpers():
    code = code_uri_for("artifacts", "0123456789ab")
    assert code == "s3://artifacts/code/0123456789ab/"
    assert source_dir_uri(code) == "s3://artifacts/code/0123456789ab/sourcedir.tar.gz"
    assert library_uri(code) == "s3://artifacts/code/0123456789ab/src/"
    assert script_uri(code, "evaluate.py") == "s3://artifacts/code/0123456789ab/src/evaluate.py"
    with pytest.raises(ValueError, match="code_uri"):
        source_dir_uri("artifacts/code/")


def test_offline_session_uses_the_config_and_no_sdk_defaults():
    config = local_config(work_bucket="bucket-x", region="eu-west-1")
    session = offline_session(config)
    # Not session.default_bucket(): that checks (and creates) the bucket in S3 even when it was given.
    assert session._default_bucket_name_override == "bucket-x"
    assert session.boto_region_name == "eu-west-1"
    assert session.sagemaker_config == {}


def test_disable_sdk_telemetry_replaces_the_sender(monkeypatch):
    from sagemaker.telemetry import telemetry_logging

    monkeypatch.setattr(telemetry_logging, "_send_telemetry_request", lambda *a, **k: 1 / 0)
    disable_sdk_telemetry()
    assert telemetry_logging._send_telemetry_request(0, [], None) is None


# --- config and CLI -----------------------------------------------------------------------------------


def test_local_config_is_well_formed():
    config = local_config()
    assert config.account == "000000000000" and config.region == "us-east-1"
    assert config.enable_network_isolation is True and not config.uses_vpc


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pipeline_name", ""),
        ("pipeline_name", "has space"),
        ("region", "useast1"),
        ("role_arn", "my-role"),
        ("artifact_bucket", "s3://bucket"),
        ("data_uri", "/local/raw/"),
        ("code_uri", "s3://bucket/code"),
        ("image_uri", ""),
        ("model_package_group_name", ""),
        ("kms_key_arn", "alias/key"),
        ("subnet_ids", ("subnet-1",)),
        ("max_tuning_jobs", 0),
        ("max_parallel_tuning_jobs", 7),
        ("rmse_threshold", -1.0),
        ("approval_status", "Maybe"),
        ("cache_expiry", "30 days"),
        ("model_family", "xgboost"),
        ("max_runtime_minutes", 0),
        ("max_runtime_minutes", 20_000),
        ("training_instance_count", 0),
        ("training_instance_count", 2),
        ("data_version", "has space"),
    ],
)
def test_config_validation_names_the_field_and_value(field, value):
    with pytest.raises(ValueError, match=rf"PipelineConfig\.{field}=") as error:
        local_config(**{field: value})
    assert repr(value) in str(error.value)


def test_local_config_rejects_unknown_fields():
    with pytest.raises(ValueError, match="no_such_field"):
        local_config(no_such_field=1)


def test_cli_writes_the_rendered_definition(tmp_path, rendered, capsys):
    out = tmp_path / "definition.json"
    assert cli_main(["render", "--out", str(out)]) == 0
    assert out.read_text() == rendered[0] + "\n"
    assert cli_main(["render", "--out", str(out), "--region", "nowhere"]) == 2
    assert "PipelineConfig.region" in capsys.readouterr().err
