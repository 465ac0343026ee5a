"""The A/B operator command: shift the challenger's weight or promote a variant, through the deploy function.

    python -m pipeline_steps ab shift PERCENT [--reason TEXT] [--settings-file F | --settings JSON]
    python -m pipeline_steps ab promote {champion,challenger} --reason TEXT [...] [--profile P]

Each action invokes the deployed `<prefix>-deploy-on-approval` function synchronously with an operator
event (`{"source": "rul.ab-test", ...}`, see `lambdas/deploy_on_approval/ab_test.py`), so the endpoint
and registry changes are made by the function's role and logged as its decisions. The caller's identity
(STS GetCallerIdentity) goes in the event as `claimed_by`: a claim, since anyone allowed to invoke the
function may write any name there; the authoritative caller is CloudTrail's record of the Invoke call
(a Lambda data event, logged by a trail that selects the function). Exit 0 when the function shifted or
promoted, 1 when it refused or failed (its reason is printed), 2 for bad settings or options.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from lambdas.deploy_on_approval.ab_names import OPERATOR_SOURCE

DONE = ("shifted", "promoted")


class AbCommandError(RuntimeError):
    """The function failed or refused; the message is its reason."""


def _percent(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(f"expected a whole percentage from 0 to 100, got {text!r}")
    return int(text)


def add_actions(parser: argparse.ArgumentParser) -> None:
    """Declare `shift` and `promote` (and their options) on a parser."""
    actions = parser.add_subparsers(dest="action", required=True)
    shift = actions.add_parser("shift", help="set the challenger's share of requests")
    shift.add_argument("percent", type=_percent)
    shift.add_argument("--reason", default="", help="recorded on both model versions")
    promote = actions.add_parser("promote", help="serve only the winner; a losing challenger is rejected")
    promote.add_argument("winner", choices=("champion", "challenger"))
    promote.add_argument("--reason", required=True, help="recorded on both versions (required)")
    for sub in (shift, promote):
        sub.add_argument("--settings-file", help="settings file the stacks were deployed with")
        sub.add_argument("--settings", help="settings JSON the stacks were deployed with")
        sub.add_argument("--profile", help="AWS named profile; the region is the settings'")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The parsed `ab shift|promote` command line."""
    parser = argparse.ArgumentParser(prog="python -m pipeline_steps ab", description=__doc__.split("\n")[0])
    add_actions(parser)
    return parser.parse_args(argv)


def operator_event(args: argparse.Namespace, claimed_by: str) -> dict[str, Any]:
    """The function's operator event for the parsed command; `claimed_by` is the caller's own ARN."""
    event: dict[str, Any] = {
        "source": OPERATOR_SOURCE,
        "action": args.action,
        "reason": args.reason,
        "claimed_by": claimed_by,
    }
    if args.action == "shift":
        event["challenger_percent"] = args.percent
    else:
        event["winner"] = args.winner
    return event


def invoke(lambda_client: Any, function_name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Invoke the function and wait; its decision, or `AbCommandError` when it failed or refused."""
    response = lambda_client.invoke(
        FunctionName=function_name, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        message = payload.get("errorMessage") if isinstance(payload, dict) else payload
        raise AbCommandError(f"the function failed: {message}")
    if not isinstance(payload, dict) or payload.get("action") not in DONE:
        reason = payload.get("reason") if isinstance(payload, dict) else payload
        raise AbCommandError(f"the function did not act: {reason}")
    return payload


def run(args: argparse.Namespace, clients: tuple[Any, Any] | None = None, out: TextIO = sys.stdout) -> int:
    """Run one parsed command; `clients` (lambda, sts) are made from the settings' region unless given."""
    from botocore.exceptions import BotoCoreError, ClientError

    from pipeline_steps.aws_target import TargetError, load_target

    try:
        target = load_target(args.settings, args.settings_file)
    except TargetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        lambda_client, sts = clients or _clients(target.region, args.profile)
        caller = sts.get_caller_identity()["Arn"]
        decision = invoke(lambda_client, target.names.deploy_function, operator_event(args, caller))
    except (AbCommandError, ClientError, BotoCoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(decision, indent=2, sort_keys=True), file=out)
    return 0


def _clients(region: str, profile: str | None) -> tuple[Any, Any]:
    import boto3

    session = boto3.Session(profile_name=profile, region_name=region)
    return session.client("lambda"), session.client("sts")


def main(argv: list[str] | None = None) -> int:
    """Run one A/B action from the command line; the exit code."""
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
