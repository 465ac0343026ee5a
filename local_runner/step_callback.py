"""Callback steps: the step waits until something outside the runner reports success or failure.

On AWS a callback step sends a message with a token to its SQS queue and waits for
SendPipelineExecutionStepSuccess/Failure with that token. Locally the message is the file
`<work>/callbacks/<token>.json` (`{"token", "pipelineExecutionArn", "arguments", "status": "Executing",
"queueUrl", "step"}`), and the answer is the file `<work>/callbacks/<token>.result.json`:

    {"status": "Success", "outputParameters": [{"Name": "n", "Value": "3"}]}
    {"status": "Failure", "failureReason": "the labelling job was rejected"}

written by `python -m local_runner callback send-success TOKEN --output n=3` or `send-failure TOKEN
--reason ...` (or by any program, atomically). The step polls for the answer until its timeout
(`--callback-timeout`), then fails naming the token (and answers itself `TimedOut`, so a late answer is
refused). Its properties are `OutputParameters['n']`, cast to
the declared types.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from local_runner.atomic import write_json_atomic
from local_runner.errors import RunnerError
from local_runner.execution_record import StepRecord
from local_runner.graph import ExecutionError
from local_runner.step_lambda import output_parameters

CALLBACKS = "callbacks"
POLL_SECONDS = 0.2


class CallbackError(RunnerError, ValueError):
    """A callback answer cannot be sent (unknown token, already answered, bad output)."""


def message_path(work_dir: Path, token: str) -> Path:
    """Where a callback step's message for `token` is written."""
    return Path(work_dir) / CALLBACKS / f"{token}.json"


def result_path(work_dir: Path, token: str) -> Path:
    """Where the answer to `token` is written."""
    return Path(work_dir) / CALLBACKS / f"{token}.result.json"


def pending_tokens(work_dir: Path) -> list[str]:
    """Tokens whose callback step waits for an answer."""
    folder = Path(work_dir) / CALLBACKS
    messages = sorted(path.name.removesuffix(".json") for path in folder.glob("*.json"))
    tokens = [name for name in messages if not name.endswith(".result")]
    return [token for token in tokens if not result_path(work_dir, token).exists()]


def send(work_dir: Path, token: str, answer: dict[str, Any]) -> Path:
    """Write the answer to a waiting callback step; the token must name a message not yet answered."""
    if not message_path(work_dir, token).is_file():
        waiting = ", ".join(pending_tokens(work_dir)) or "none"
        raise CallbackError(f"no callback step sent token {token} in {work_dir} (waiting tokens: {waiting})")
    if result_path(work_dir, token).exists():
        status = json.loads(result_path(work_dir, token).read_text()).get("status")
        raise CallbackError(f"token {token} was already answered ({status})")
    return write_json_atomic(result_path(work_dir, token), answer)


def success_answer(outputs: list[tuple[str, str]]) -> dict:
    """SendPipelineExecutionStepSuccess's answer with these output parameters."""
    return {"status": "Success", "outputParameters": [{"Name": n, "Value": v} for n, v in outputs]}


def failure_answer(reason: str) -> dict:
    """SendPipelineExecutionStepFailure's answer with this reason."""
    return {"status": "Failure", "failureReason": reason}


def _apply_answer(step: dict, answer: Any, token: str, record: StepRecord) -> None:
    if not isinstance(answer, dict) or answer.get("status") not in ("Success", "Failure"):
        raise ExecutionError(f"callback token {token}: the answer is not {{'status': 'Success'|'Failure'}}")
    if answer["status"] == "Failure":
        record.status = "Failed"
        record.failure_reason = f"callback token {token}: {answer.get('failureReason', '')}"
        return
    sent = {item["Name"]: item["Value"] for item in answer.get("outputParameters", [])}
    outputs = output_parameters(step.get("OutputParameters", []), sent, f"callback token {token}")
    record.properties = {"OutputParameters": outputs, "CallbackToken": token}


def run_callback(executor: Any, step: dict, arguments: dict, record: StepRecord) -> None:
    """Send the step's message and wait for its answer (or the timeout, or a stop request)."""
    token = secrets.token_hex(8)
    execution = executor._context.execution
    message = {
        "token": token,
        "pipelineExecutionArn": execution["PipelineExecutionArn"],
        "step": step["Name"],
        "queueUrl": step.get("SqsQueueUrl", ""),
        "arguments": arguments,
        "status": "Executing",
    }
    write_json_atomic(message_path(executor.work_dir, token), message)
    executor.echo(
        f"step {step['Name']} waits for callback token {token}: "
        f"python -m local_runner callback send-success {token} --work-dir {executor.work_dir}"
    )
    answer_file = result_path(executor.work_dir, token)
    deadline = time.monotonic() + executor.options.callback_timeout
    while not answer_file.exists():
        executor.stop.check()
        if time.monotonic() > deadline:
            write_json_atomic(answer_file, {"status": "TimedOut"})  # a late answer is refused
            record.status = "Failed"
            record.failure_reason = (
                f"callback token {token}: no answer within {executor.options.callback_timeout:g}s"
            )
            return
        time.sleep(POLL_SECONDS)
    try:
        answer = json.loads(answer_file.read_text())
    except json.JSONDecodeError as error:
        raise ExecutionError(f"{answer_file} is not valid JSON: {error}") from None
    _apply_answer(step, answer, token, record)
