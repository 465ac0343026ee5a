"""The verbs that drive the deployed pipeline: `start`, `status`, `list-executions`, `approve`, `reject`.

`run` loads the deployment (`aws_target`), makes one SageMaker client (region from the settings,
optional `--profile`, standard retries) unless one is passed in, runs the verb and maps failures to exit
codes: an AWS error prints `error: <code>: <message>` and exits 1, except AccessDenied, which prints one
line naming the action and the project role that may do it; a refusal (`aws_registry.Refused`) exits 1;
invalid settings, parameters or references exit 2, like argparse's usage errors; Ctrl-C exits 130.
`__main__` imports this module only when a verb runs (the command line itself is `aws_cli`), so `--help`
stays fast. `start` checks its `Name=Value` parameters against the deployed definition (DescribePipeline)
before it starts anything, and sends a client token derived from the pipeline, the parameters and the
10-minute window, so re-running the same command within the window returns the first execution instead
of starting a second one.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_steps import names
from pipeline_steps.aws_parameters import (
    ParameterError,
    build_request,
    declared_parameters,
    parse_assignments,
)
from pipeline_steps.aws_registry import BadReference, Refused
from pipeline_steps.aws_registry import approve as approve_version
from pipeline_steps.aws_registry import reject as reject_version
from pipeline_steps.aws_status import Poller, show_status, wait_for
from pipeline_steps.aws_target import Target, TargetError, access_denied_line, load_target

ACCESS_DENIED_CODES = ("AccessDeniedException", "AccessDenied")
TOKEN_WINDOW_SECONDS = 600


@dataclass(frozen=True)
class Io:
    """Streams and clock of a run (tests pass fakes)."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def make_client(region: str, profile: str | None) -> Any:
    """A SageMaker client for `region` (and the named profile), with standard retries."""
    import boto3
    from botocore.config import Config

    session = boto3.Session(profile_name=profile, region_name=region)
    return session.client("sagemaker", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def client_token(pipeline: str, parameters: list[dict[str, str]], now: datetime) -> str:
    """StartPipelineExecution's idempotency token: the same request in the same window gets the same one."""
    window = int(now.timestamp()) // TOKEN_WINDOW_SECONDS
    ordered = sorted((item["Name"], item["Value"]) for item in parameters)
    return hashlib.sha256(repr((pipeline, ordered, window)).encode()).hexdigest()


def start(client: Any, target: Target, args: argparse.Namespace, io: Io) -> int:
    """Start an execution with the checked parameters; print its ARN (and wait, with --wait)."""
    pipeline = target.names.pipeline
    declared = declared_parameters(client.describe_pipeline(PipelineName=pipeline)["PipelineDefinition"])
    parameters = build_request(parse_assignments(args.param), declared, pipeline)
    version = declared.get(names.DATA_VERSION)
    if version is not None and version.name not in {item["Name"] for item in parameters}:
        print(
            f"note: {version.name} not given, so the default {version.default!r} keys the step cache: "
            "steps cached from an earlier run with the same arguments are reused",
            file=io.err,
        )
    now = io.now()
    token = args.client_token or client_token(pipeline, parameters, now)
    response = client.start_pipeline_execution(
        PipelineName=pipeline,
        PipelineExecutionDisplayName=args.display_name or f"manual-{now:%Y%m%d-%H%M%S}",
        PipelineExecutionDescription="started with python -m pipeline_steps start",
        PipelineParameters=parameters,
        ClientRequestToken=token,
    )
    arn = response["PipelineExecutionArn"]
    print(arn, file=io.out)
    print(
        f"client token {token} (the same request within {TOKEN_WINDOW_SECONDS // 60} minutes returns "
        "this execution)",
        file=io.err,
    )
    return _wait(client, arn, args, io) if args.wait else 0


class NoExecution(Exception):
    """The pipeline has no execution to show."""


def _newest_execution(client: Any, pipeline: str) -> str:
    response = client.list_pipeline_executions(
        PipelineName=pipeline, SortBy="CreationTime", SortOrder="Descending", MaxResults=1
    )
    summaries = response.get("PipelineExecutionSummaries", [])
    if not summaries:
        raise NoExecution(f"pipeline {pipeline} has no executions yet")
    return summaries[0]["PipelineExecutionArn"]


def _wait(client: Any, arn: str, args: argparse.Namespace, io: Io) -> int:
    return wait_for(client, arn, Poller(args.interval, io.sleep, io.now), io.out)


def status(client: Any, target: Target, args: argparse.Namespace, io: Io) -> int:
    """Show (or wait for) the given execution, else the newest one."""
    if args.execution is None:
        arn = _newest_execution(client, target.names.pipeline)
    elif args.execution.startswith("arn:"):
        arn = args.execution
    else:
        arn = target.execution_arn(args.execution)
    return _wait(client, arn, args, io) if args.wait else show_status(client, arn, io.out)


def list_executions(client: Any, target: Target, args: argparse.Namespace, io: Io) -> int:
    """Print the newest executions: start time, status, id, display name."""
    response = client.list_pipeline_executions(
        PipelineName=target.names.pipeline, SortBy="CreationTime", SortOrder="Descending", MaxResults=args.max
    )
    for summary in response.get("PipelineExecutionSummaries", []):
        started = summary.get("StartTime")
        when = f"{started:%Y-%m-%d %H:%M:%S%z}" if started else "-"
        execution_id = summary["PipelineExecutionArn"].rsplit("/", 1)[-1]
        print(
            f"{when}  {summary.get('PipelineExecutionStatus', ''):<12} {execution_id}  "
            f"{summary.get('PipelineExecutionDisplayName', '')}",
            file=io.out,
        )
    return 0


def approve(client: Any, target: Target, args: argparse.Namespace, io: Io) -> int:
    """Approve a registered model version (the approver role's action)."""
    return approve_version(client, target, args.version, args.reason, io.out)


def reject(client: Any, target: Target, args: argparse.Namespace, io: Io) -> int:
    """Reject a registered model version (the approver role's action)."""
    return reject_version(client, target, args.version, args.reason, io.out)


VERBS = {
    "start": start,
    "status": status,
    "list-executions": list_executions,
    "approve": approve,
    "reject": reject,
}


def run(args: argparse.Namespace, client: Any = None, io: Io | None = None) -> int:
    """Run one AWS verb; every expected failure becomes a message on stderr and an exit code."""
    io = io or Io()
    try:
        target = load_target(args.settings, args.settings_file)
        client = client or make_client(target.region, args.profile)
        target = replace(target, partition=client.meta.partition)
        return VERBS[args.command](client, target, args, io)
    except (TargetError, ParameterError, BadReference) as error:
        print(f"error: {error}", file=io.err)
        return 2
    except (Refused, NoExecution) as error:
        print(f"error: {error}", file=io.err)
        return 1
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        if code in ACCESS_DENIED_CODES:
            action = f"sagemaker:{error.operation_name}"
            print(access_denied_line(target, args.command, action), file=io.err)
        else:
            print(f"error: {code}: {error.response.get('Error', {}).get('Message', '')}", file=io.err)
        return 1
    except BotoCoreError as error:
        print(f"error: {type(error).__name__}: {error}", file=io.err)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=io.err)
        return 130
