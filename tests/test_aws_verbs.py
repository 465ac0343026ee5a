"""The AWS verbs of `python -m pipeline_steps`: start, status (--wait), list-executions, and what all share.

Requests are checked with botocore's `Stubber` on a real `boto3.client("sagemaker")` (botocore validates
every request and response against the service model, and a call nobody stubbed fails the test). moto
serves a start/list round trip; it has no ListPipelineExecutionSteps and ignores `ClientRequestToken`,
so the wait loop and idempotency are Stubber-only. The wait loop runs on a fake clock whose `sleep` only
advances time. Also here: usage errors (exit 2), AWS and botocore errors (exit 1), the settings the verbs
read, and `--help` importing neither boto3 nor the SageMaker SDK. Start's parameters:
test_aws_verbs_start.py; approval: test_aws_verbs_registry.py.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import timedelta

import pytest
from aws_stubs import (  # noqa: F401 - fixtures
    ACCOUNT,
    CREATED,
    DEFINITION,
    EXECUTION_ARN,
    EXECUTION_ID,
    NAMES,
    PIPELINE,
    REGION,
    SETTINGS,
    FakeClock,
    moto_fixture,
    no_cdk_context_fixture,
    run,
    stubbed_fixture,
)
from botocore.stub import Stubber

from pipeline_steps import aws_target, aws_verbs, names
from pipeline_steps.__main__ import main, parse_args

# --- status, --wait, list-executions ----------------------------------------------------------------------


def execution(status: str, reason: str = "") -> dict:
    response = {
        "PipelineExecutionArn": EXECUTION_ARN,
        "PipelineExecutionDisplayName": "manual-1",
        "PipelineExecutionStatus": status,
        "CreationTime": CREATED,
    }
    return {**response, "FailureReason": reason} if reason else response


def step(name: str, status: str, kind: str, metadata: dict | None = None, reason: str = "") -> dict:
    found = {"StepName": name, "StepStatus": status, "Metadata": {kind: metadata or {}}}
    return {**found, "FailureReason": reason} if reason else found


JOB = {"Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/pipelines-x-preprocessdata-y"}
TUNING = {"Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:hyper-parameter-tuning-job/x-tune"}
GATE_MESSAGE = "RMSE 31.2 above 20.0"


def stub_poll(stubber: Stubber, status: str, steps: list[dict], reason: str = "") -> None:
    stubber.add_response(
        "describe_pipeline_execution", execution(status, reason), {"PipelineExecutionArn": EXECUTION_ARN}
    )
    stubber.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": steps},
        {"PipelineExecutionArn": EXECUTION_ARN, "SortOrder": "Ascending"},
    )


def test_status_prints_the_execution_and_its_steps_by_execution_id(stubbed):
    client, stubber = stubbed
    stub_poll(stubber, "Executing", [step(names.PREPROCESS_STEP, "Succeeded", "ProcessingJob", JOB)])
    code, out, _ = run(client, "status", EXECUTION_ID)
    assert code == 0
    assert f"{EXECUTION_ARN}  manual-1  Executing" in out
    assert names.PREPROCESS_STEP in out and "ProcessingJob" in out


def test_status_without_an_execution_shows_the_newest(stubbed):
    client, stubber = stubbed
    stubber.add_response(
        "list_pipeline_executions",
        {"PipelineExecutionSummaries": [{"PipelineExecutionArn": EXECUTION_ARN}]},
        {"PipelineName": PIPELINE, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 1},
    )
    stub_poll(stubber, "Succeeded", [])
    assert run(client, "status")[0] == 0


def test_status_of_a_pipeline_without_executions_exits_1(stubbed):
    client, stubber = stubbed
    stubber.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": []}, None)
    code, _, err = run(client, "status")
    assert code == 1 and f"pipeline {PIPELINE} has no executions yet" in err


def test_wait_prints_each_status_change_with_elapsed_time_and_exits_0(stubbed):
    client, stubber = stubbed
    preprocess_done = step(names.PREPROCESS_STEP, "Succeeded", "ProcessingJob", JOB)
    stub_poll(stubber, "Executing", [step(names.PREPROCESS_STEP, "Executing", "ProcessingJob", JOB)])
    stub_poll(stubber, "Executing", [step(names.PREPROCESS_STEP, "Executing", "ProcessingJob", JOB)])
    stub_poll(
        stubber, "Executing", [preprocess_done, step(names.TUNE_STEP, "Executing", "TuningJob", TUNING)]
    )
    stub_poll(
        stubber, "Executing", [preprocess_done, step(names.TUNE_STEP, "Executing", "TuningJob", TUNING)]
    )
    stub_poll(
        stubber, "Succeeded", [preprocess_done, step(names.TUNE_STEP, "Succeeded", "TuningJob", TUNING)]
    )
    clock = FakeClock(CREATED + timedelta(seconds=30))
    code, out, _ = run(client, "status", EXECUTION_ARN, "--wait", "--interval", "12", clock=clock)
    assert code == 0
    assert clock.sleeps == [5, 10, 12, 12]  # doubles from 5 s up to the bound
    assert out.splitlines() == [
        "[0:00:30] execution Executing",
        f"[0:00:30] {names.PREPROCESS_STEP} Executing",
        f"[0:00:45] {names.PREPROCESS_STEP} Succeeded",
        f"[0:00:45] {names.TUNE_STEP} Executing",
        "[0:01:09] execution Succeeded",
        f"[0:01:09] {names.TUNE_STEP} Succeeded",
        "execution Succeeded",
    ]


def test_wait_exits_3_when_the_quality_gate_fail_step_failed(stubbed):
    client, stubber = stubbed
    steps = [
        step(names.GATE_STEP, "Succeeded", "Condition", {"Outcome": "False"}),
        step(names.FAIL_STEP, "Failed", "Fail", {"ErrorMessage": GATE_MESSAGE}),
    ]
    stub_poll(stubber, "Failed", steps, reason="Step failure: One or multiple steps failed.")
    code, out, _ = run(client, "status", EXECUTION_ID, "--wait")
    assert code == 3
    assert f"{names.FAIL_STEP} Failed  {GATE_MESSAGE}" in out
    assert out.splitlines()[-1] == f"the quality gate failed the execution: {names.FAIL_STEP}: {GATE_MESSAGE}"


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_wait_exits_1_on_any_other_failure(stubbed, status):
    client, stubber = stubbed
    failed = step(names.TUNE_STEP, "Failed", "TuningJob", TUNING, reason="ResourceLimitExceeded")
    stub_poll(stubber, status, [failed] if status == "Failed" else [], reason="stopped by operator")
    code, out, _ = run(client, "status", EXECUTION_ID, "--wait")
    assert code == 1
    assert f"execution {status}: stopped by operator" in out.splitlines()[-1]
    if status == "Failed":
        assert f"failed steps: {names.TUNE_STEP} (TuningJob): ResourceLimitExceeded" in out


def test_wait_exits_130_on_ctrl_c_and_leaves_the_execution_running(stubbed):
    client, stubber = stubbed
    stub_poll(stubber, "Executing", [])

    class Interrupting(FakeClock):
        def sleep(self, seconds: float) -> None:
            raise KeyboardInterrupt

    code, out, _ = run(client, "status", EXECUTION_ID, "--wait", clock=Interrupting(CREATED))
    assert code == 130 and f"the execution keeps running: {EXECUTION_ARN}" in out


def test_list_executions_prints_the_newest_first(stubbed):
    client, stubber = stubbed
    summaries = [
        {
            "PipelineExecutionArn": EXECUTION_ARN,
            "StartTime": CREATED,
            "PipelineExecutionStatus": "Succeeded",
            "PipelineExecutionDisplayName": "newdata-abc",
        }
    ]
    stubber.add_response(
        "list_pipeline_executions",
        {"PipelineExecutionSummaries": summaries},
        {"PipelineName": PIPELINE, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 3},
    )
    code, out, _ = run(client, "list-executions", "--max", "3")
    assert code == 0
    assert out.split() == ["2026-12-03", "09:00:00+0000", "Succeeded", EXECUTION_ID, "newdata-abc"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reject", "7"], "the following arguments are required: --reason"),
        (["reject", "7", "--reason", "  "], "expected 1 to 1024 characters, got 0"),
        (["status", "--wait", "--interval", "0"], "expected an integer from 1 to 300, got '0'"),
        (["list-executions", "--max", "101"], "expected an integer from 1 to 100, got '101'"),
        (["start", "--client-token", "short"], "expected 32 to 128 characters, got 5"),
        (["deploy"], "invalid choice: 'deploy'"),
    ],
)
def test_usage_errors_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as caught:
        main([*argv, "--settings", SETTINGS])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


# --- errors -----------------------------------------------------------------------------------------------


def test_access_denied_on_start_names_the_roles_that_may_start(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("describe_pipeline", "AccessDeniedException", "no")
    code, _, err = run(client, "start")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "sagemaker:DescribePipeline (start)" in err
    assert f"role/{NAMES.operator_role}" in err and f"role/{NAMES.studio_role}" in err


def test_other_aws_errors_are_printed_with_code_and_message(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("describe_pipeline", "ResourceNotFound", f"Pipeline {PIPELINE} does not exist")
    code, _, err = run(client, "start")
    assert (code, err.strip()) == (1, f"error: ResourceNotFound: Pipeline {PIPELINE} does not exist")


def test_a_missing_profile_is_a_botocore_error_with_its_name(monkeypatch, tmp_path):
    (tmp_path / "config").write_text("[profile other]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    args = parse_args(["list-executions", "--settings", SETTINGS, "--profile", "ml-operator"])
    err = io.StringIO()
    assert aws_verbs.run(args, io=aws_verbs.Io(io.StringIO(), err)) == 1
    assert (
        err.getvalue().strip()
        == "error: ProfileNotFound: The config profile (ml-operator) could not be found"
    )


def test_the_client_is_made_in_the_settings_region_with_standard_retries():
    client = aws_verbs.make_client(REGION, None)
    assert client.meta.region_name == REGION
    assert client.meta.config.retries["mode"] == "standard"


def test_settings_of_the_placeholder_account_are_refused(stubbed):
    args = parse_args(["list-executions", "--settings", json.dumps({"project": {"environment": "test"}})])
    err = io.StringIO()
    assert aws_verbs.run(args, client=stubbed[0], io=aws_verbs.Io(io.StringIO(), err)) == 2
    assert "placeholder account 111111111111" in err.getvalue()


def test_settings_come_from_the_cdk_json_context_like_app_py(tmp_path):
    (tmp_path / "prod.json").write_text(json.dumps({"aws": {"account": ACCOUNT, "region": "us-east-2"}}))
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(
        json.dumps(
            {"context": {"settings_file": "prod.json", "settings": {"project": {"environment": "prod"}}}}
        )
    )
    target = aws_target.load_target(None, None, cdk_json=cdk_json)
    assert (target.region, target.names.pipeline) == ("us-east-2", "turbofan-rul-prod-training")
    overridden = aws_target.load_target(SETTINGS, None, cdk_json=cdk_json)
    assert overridden.names.pipeline == PIPELINE and overridden.region == REGION


def test_help_imports_neither_boto3_nor_the_sagemaker_sdk():
    probe = (
        "import sys\n"
        "from pipeline_steps.__main__ import main\n"
        "for argv in (['--help'], ['start', '--help'], ['approve', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = {'boto3', 'botocore', 'sagemaker', 'settings', 'pydantic'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stderr.strip() == "[]"
    assert "list-executions" in result.stdout and "--reason" in result.stdout


# --- moto ---


def test_moto_start_then_list_executions(moto):
    moto.create_pipeline(
        PipelineName=PIPELINE,
        PipelineDefinition=DEFINITION,
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{NAMES.pipeline_role}",
        ClientRequestToken="c" * 32,
    )
    code, out, _ = run(moto, "start", "--param", f"{names.SUBSET}=FD002", "--display-name", "by-hand")
    assert code == 0
    arn = out.strip()
    parameters = moto.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)
    assert parameters["PipelineParameters"] == [{"Name": names.SUBSET, "Value": "FD002"}]
    code, out, _ = run(moto, "list-executions")
    assert code == 0 and arn.rsplit("/", 1)[-1] in out and "by-hand" in out
