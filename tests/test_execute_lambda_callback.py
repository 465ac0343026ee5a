"""`execute` parity: Lambda steps through the lambda map, Callback steps completed through the CLI verb or
ended by their timeout, rendered with the SageMaker SDK."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from sagemaker.lambda_helper import Lambda
from sagemaker.workflow.callback_step import CallbackOutput, CallbackOutputTypeEnum, CallbackStep
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join
from sagemaker.workflow.lambda_step import LambdaOutput, LambdaOutputTypeEnum, LambdaStep
from sagemaker.workflow.parameters import ParameterInteger
from test_execute_support import execute, render, steps_of

from local_runner.__main__ import main

# The SDK warns that it will not deploy the function: the definition only names it.
pytestmark = pytest.mark.filterwarnings("ignore:Lambda function won't be updated")
FUNCTION = "arn:aws:lambda:us-east-1:111122223333:function:double"
HANDLERS = """
def double(event, context):
    if event["n"] < 0:
        raise ValueError("n must not be negative")
    return {"doubled": event["n"] * 2, "greeting": f"hello {event['who']} from {context.function_name}"}
"""


def _pipeline(session) -> list:
    double = LambdaStep(
        "Double",
        lambda_func=Lambda(function_arn=FUNCTION, session=session),
        inputs={
            "n": ParameterInteger("N", 3),
            "who": Join(on="-", values=["run", ExecutionVariables.PIPELINE_NAME]),
        },
        outputs=[
            LambdaOutput("doubled", LambdaOutputTypeEnum.Integer),
            LambdaOutput("greeting", LambdaOutputTypeEnum.String),
        ],
    )
    review = CallbackStep(
        "Review",
        sqs_queue_url="https://sqs.us-east-1.amazonaws.com/111122223333/reviews",
        inputs={"doubled": double.properties.Outputs["doubled"]},
        outputs=[
            CallbackOutput("score", CallbackOutputTypeEnum.Float),
            CallbackOutput("approved", CallbackOutputTypeEnum.Boolean),
        ],
    )
    gate = ConditionStep(
        "Good",
        conditions=[ConditionGreaterThanOrEqualTo(left=review.properties.Outputs["score"], right=0.5)],
        if_steps=[],
        else_steps=[FailStep("Rejected", error_message="the review scored low")],
    )
    return [double, review, gate]


def _options(tmp_path: Path) -> list[str]:
    (tmp_path / "handlers.py").write_text(HANDLERS)
    (tmp_path / "lambdas.json").write_text(json.dumps({FUNCTION: "handlers.py:double"}))
    return ["--lambda-map", str(tmp_path / "lambdas.json"), "--pipeline-name", "parity"]


def _answer_when_asked(work: Path, *answer: str) -> tuple[threading.Thread, dict]:
    """A thread that answers the first callback message through the CLI verb; the message it saw."""
    seen: dict = {}

    def answer_it() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            messages = [p for p in (work / "callbacks").glob("*.json") if not p.name.endswith(".result.json")]
            if messages:
                seen.update(json.loads(messages[0].read_text()))
                seen["exit"] = main(
                    ["callback", answer[0], seen["token"], *answer[1:], "--work-dir", str(work)]
                )
                return
            time.sleep(0.05)

    thread = threading.Thread(target=answer_it, daemon=True)
    thread.start()
    return thread, seen


def test_lambda_outputs_feed_a_callback_completed_by_the_cli(tmp_path):
    definition = render(_pipeline, parameters=[ParameterInteger("N", 3)])
    thread, seen = _answer_when_asked(
        tmp_path / "work", "send-success", "--output", "score=0.75", "--output", "approved=true"
    )

    code, record = execute(tmp_path, definition, *_options(tmp_path), "--param", "N=4")
    thread.join(5)

    steps = steps_of(record)
    assert code == 0, record["failure_reason"]
    assert steps["Double"]["properties"]["OutputParameters"] == {
        "doubled": 8,
        "greeting": "hello run-parity from double",
    }
    assert seen["arguments"] == {"doubled": 8} and seen["exit"] == 0
    assert seen["queueUrl"].endswith("/reviews") and seen["pipelineExecutionArn"].endswith(
        record["execution_id"]
    )
    assert steps["Review"]["properties"]["OutputParameters"] == {"score": 0.75, "approved": True}
    assert steps["Good"]["properties"]["Outcome"] == "True" and steps["Rejected"]["status"] == "NotExecuted"


def test_a_callback_failure_fails_the_step_with_its_reason(tmp_path):
    definition = render(_pipeline, parameters=[ParameterInteger("N", 3)])
    thread, seen = _answer_when_asked(tmp_path / "work", "send-failure", "--reason", "reviewer said no")

    code, record = execute(tmp_path, definition, *_options(tmp_path))
    thread.join(5)

    assert code == 1
    review = steps_of(record)["Review"]
    assert (
        review["status"] == "Failed"
        and review["failure_reason"] == f"callback token {seen['token']}: reviewer said no"
    )


def test_an_unanswered_callback_times_out_naming_its_token(tmp_path, capsys):
    definition = render(_pipeline, parameters=[ParameterInteger("N", 3)])

    code, record = execute(tmp_path, definition, *_options(tmp_path), "--callback-timeout", "0.5")

    review = steps_of(record)["Review"]
    assert code == 1 and review["status"] == "Failed"
    assert review["failure_reason"].endswith("no answer within 0.5s")
    token = review["failure_reason"].split()[2].rstrip(":")
    # A late answer to a finished step is still refused by name, and an unknown token lists the waiting ones.
    for late in (token, "nope"):
        assert main(["callback", "send-success", late, "--work-dir", str(tmp_path / "work")]) == 2
    assert "already answered (TimedOut)" in capsys.readouterr().err


def test_a_failing_handler_and_an_unmapped_function_fail_the_lambda_step(tmp_path):
    definition = render(_pipeline, parameters=[ParameterInteger("N", 3)])

    code, record = execute(tmp_path, definition, *_options(tmp_path), "--param", "N=-1")
    assert code == 1
    assert "ValueError: n must not be negative" in steps_of(record)["Double"]["failure_reason"]

    (tmp_path / "empty.json").write_text("{}")
    code, record = execute(tmp_path, definition, "--lambda-map", str(tmp_path / "empty.json"))
    assert code == 1
    assert f"no local handler for Lambda function {FUNCTION}" in steps_of(record)["Double"]["failure_reason"]
