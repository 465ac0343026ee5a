"""Tests of the SageMaker pipeline definition, on the parsed JSON of an offline render.

The default definition is rendered once per session under a network guard (socket connects refused,
botocore `before-send` and `Endpoint.make_request` recorded; `definition_helpers`) so every test also
proves rendering is offline. Here: determinism, the structure and parameters, the final refit and the
command line; the steps' arguments are in test_pipeline_definition_steps.py, the secured variant (KMS,
VPC, spot) and the source bundle in test_pipeline_definition_security.py, the config in
test_pipeline_config.py.
"""

from __future__ import annotations

import json

import boto3
import pytest
from definition_helpers import (
    REGISTER_JSON_NAME,
    all_steps,
    default_render,
    gets,
    guarded_render,
    network_guard,
    output_get,
    step_refs,
)

from pipeline_steps import names
from pipeline_steps.__main__ import main as cli_main
from pipeline_steps.config import local_config
from pipeline_steps.render import find_timestamped_values
from pipeline_steps.tuning import TUNING_RANGES
from rul.data import SUBSETS
from rul.hyperparameters import MODEL_FAMILIES
from rul.metrics import metric_definitions, metric_regex


@pytest.fixture(scope="module")
def rendered() -> tuple[str, list[str]]:
    return default_render()


@pytest.fixture(scope="module")
def definition(rendered) -> dict:
    return json.loads(rendered[0])


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
        names.PROCESSING_INSTANCE_TYPE: "ml.m5.xlarge",  # the settings' defaults, as on AWS
        names.PROCESSING_INSTANCE_COUNT: 1,
        names.TRAINING_INSTANCE_TYPE: "ml.m5.xlarge",
        names.TUNING_MAX_JOBS: 6,
        names.TUNING_MAX_PARALLEL_JOBS: 2,
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
        names.TRIAL_CHANNEL: {
            "Std:Join": {
                "On": "/",
                "Values": [
                    "s3:/",
                    tuning["OutputDataConfig"]["S3OutputPath"].split("/")[2],
                    "/".join(tuning["OutputDataConfig"]["S3OutputPath"].split("/")[3:]),
                    {"Get": f"Steps.{names.TUNE_STEP}.TrainingJobSummaries[0].TrainingJobName"},
                    "output/model.tar.gz",
                ],
            }
        },
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


# --- CLI ----------------------------------------------------------------------------------------------


def test_cli_writes_the_rendered_definition(tmp_path, rendered, capsys):
    out = tmp_path / "definition.json"
    assert cli_main(["render", "--out", str(out)]) == 0
    assert out.read_text() == rendered[0] + "\n"
    assert cli_main(["render", "--out", str(out), "--region", "nowhere"]) == 2
    assert "PipelineConfig.region" in capsys.readouterr().err
