"""The command line of the AWS verbs: `add_verbs` declares start, status, list-executions, approve, reject.

Kept apart from `aws_verbs` (which runs them) and importing nothing but argparse, so that
`python -m pipeline_steps --help` loads neither boto3, the settings nor the SageMaker SDK. Bounded values
(poll interval, count, token and reason lengths) are checked here, so a bad one is a usage error (exit 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from pipeline_steps.aws_ab import add_actions

MAX_POLL_SECONDS = 300
DEFAULT_POLL_SECONDS = 60


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high`, else a usage error naming the range."""

    def parse(text: str) -> int:
        if not text.strip().lstrip("+").isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {text!r}")
        return int(text)

    return parse


def bounded_text(low: int, high: int) -> Callable[[str], str]:
    """An argparse type: stripped text of `low` to `high` characters, else a usage error."""

    def parse(text: str) -> str:
        if not low <= len(text.strip()) <= high:
            raise argparse.ArgumentTypeError(f"expected {low} to {high} characters, got {len(text.strip())}")
        return text.strip()

    return parse


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settings-file", help="settings file the stacks were deployed with (-c settings_file)"
    )
    parser.add_argument("--settings", help="settings JSON the stacks were deployed with (-c settings)")
    parser.add_argument("--profile", help="AWS named profile (credentials); the region is the settings'")


def _add_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true", help="poll until the execution ends; exit 0/1/3")
    parser.add_argument(
        "--interval",
        type=bounded_int(1, MAX_POLL_SECONDS),
        default=DEFAULT_POLL_SECONDS,
        help=f"longest poll interval in seconds (default {DEFAULT_POLL_SECONDS}, at most {MAX_POLL_SECONDS})",
    )


def add_verbs(commands: Any) -> None:
    """Declare the AWS verbs on the subcommand set of `python -m pipeline_steps`."""
    start = commands.add_parser("start", help="start an execution of the deployed training pipeline")
    start.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="pipeline parameter"
    )
    start.add_argument("--display-name", type=bounded_text(1, 82), help="execution display name")
    start.add_argument("--client-token", type=bounded_text(32, 128), help="idempotency token (32-128 chars)")
    _add_wait(start)
    status = commands.add_parser("status", help="show (or --wait for) an execution and its steps")
    status.add_argument("execution", nargs="?", help="execution id or ARN (default: the newest)")
    _add_wait(status)
    listing = commands.add_parser("list-executions", help="list the newest executions")
    listing.add_argument("--max", type=bounded_int(1, 100), default=10, help="how many (1-100, default 10)")
    approve = commands.add_parser("approve", help="approve a registered model version (approver role)")
    approve.add_argument("version", help="version number in the project's group, or model package ARN")
    approve.add_argument("--reason", type=bounded_text(1, 1024), help="ApprovalDescription")
    reject = commands.add_parser("reject", help="reject a registered model version (approver role)")
    reject.add_argument("version", help="version number in the project's group, or model package ARN")
    reject.add_argument("--reason", type=bounded_text(1, 1024), required=True, help="why (required)")
    for parser in (start, status, listing, approve, reject):
        _add_common(parser)
    add_actions(commands.add_parser("ab", help="shift or promote an A/B test (operator role)"))
