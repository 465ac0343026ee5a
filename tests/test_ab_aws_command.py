"""`python -m pipeline_steps ab`: the operator command invokes the deploy function with an A/B event.

Lambda and STS clients under botocore's Stubber: the Invoke request is validated against the service
model and compared with the expected one (function name from the settings, the event's exact payload).
"""

from __future__ import annotations

import io
import json

import boto3
import pytest
from aws_stubs import NAMES, REGION, SETTINGS, isolate_from_cdk_json
from botocore.response import StreamingBody
from botocore.stub import Stubber

from pipeline_steps import aws_ab

CALLER = "arn:aws:sts::123456789012:assumed-role/operator/alice"
FUNCTION = f"{NAMES.prefix}-deploy-on-approval"


@pytest.fixture
def clients(monkeypatch, tmp_path):
    isolate_from_cdk_json(monkeypatch, tmp_path)
    keys = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    lambda_client, sts = boto3.client("lambda", **keys), boto3.client("sts", **keys)
    with Stubber(lambda_client) as lambdas, Stubber(sts) as identity:
        identity.add_response(
            "get_caller_identity", {"Arn": CALLER, "Account": "123456789012", "UserId": "x"}
        )
        yield (lambda_client, sts), lambdas
        lambdas.assert_no_pending_responses()


def body(document: object) -> StreamingBody:
    raw = json.dumps(document).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def expect(lambdas: Stubber, event: dict, answer: object, function_error: bool = False) -> None:
    response = {"StatusCode": 200, "Payload": body(answer)}
    if function_error:
        response["FunctionError"] = "Unhandled"
    expected = {
        "FunctionName": FUNCTION,
        "InvocationType": "RequestResponse",
        "Payload": json.dumps(event).encode(),
    }
    lambdas.add_response("invoke", response, expected)


def run(clients, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = aws_ab.run(aws_ab.parse_args([*argv, "--settings", SETTINGS]), clients, out)
    return code, out.getvalue()


def test_shift_invokes_the_function_with_the_operator_event(clients):
    pair, lambdas = clients
    event = {"source": "rul.ab-test", "action": "shift", "reason": "ramp", "claimed_by": CALLER}
    event["challenger_percent"] = 70
    expect(lambdas, event, {"action": "shifted", "reason": "weights changed"})

    code, out = run(pair, "shift", "70", "--reason", "ramp")

    assert code == 0 and json.loads(out)["action"] == "shifted"


def test_a_refusal_or_a_failure_of_the_function_exits_1(clients, capsys):
    pair, lambdas = clients
    event = {"source": "rul.ab-test", "action": "promote", "reason": "done", "claimed_by": CALLER}
    event["winner"] = "champion"
    expect(lambdas, event, {"action": "refused", "reason": "endpoint x serves no A/B test"})

    assert run(pair, "promote", "champion", "--reason", "done")[0] == 1
    assert "serves no A/B test" in capsys.readouterr().err


def test_the_function_error_message_is_shown(clients, capsys):
    pair, lambdas = clients
    event = {"source": "rul.ab-test", "action": "shift", "reason": "", "claimed_by": CALLER}
    event["challenger_percent"] = 5
    expect(lambdas, event, {"errorMessage": "EndpointBusy: Updating"}, function_error=True)

    assert run(pair, "shift", "5")[0] == 1
    assert "EndpointBusy: Updating" in capsys.readouterr().err


def test_bad_options_are_usage_errors():
    with pytest.raises(SystemExit) as exit_info:
        aws_ab.parse_args(["shift", "101"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        aws_ab.parse_args(["promote", "champion"])  # --reason is required


def test_the_ab_command_is_a_verb_of_python_m_pipeline_steps():
    from pipeline_steps.__main__ import parse_args

    args = parse_args(["ab", "shift", "30", "--reason", "more traffic", "--settings", SETTINGS])
    assert (args.command, args.action, args.percent, args.reason) == ("ab", "shift", 30, "more traffic")
    with pytest.raises(SystemExit):
        parse_args(["ab", "promote", "both", "--reason", "x"])
