"""Lambda entry point: on an approval or rejection, converge serving on the newest approved model version.

Triggered by the EventBridge rule for `SageMaker Model Package State Change` of the project's group.
Desired state = the newest Approved version of the group (for a rejection: other than the rejected one).
Each run converges three things on it, each idempotently, and changes nothing that already matches:

1. the endpoint: model (VPC) + endpoint config (KMS, data capture of input and output by SageMaker or by
   the container, see `endpoint`) created or reused; the endpoint created, or moved by a blue/green
   update (canary or linear traffic shifting, auto-rollback on the configured CloudWatch alarms);
2. only with `USE_MODEL_MONITOR=true`: the Model Monitor schedule of the drift job (see `monitoring`), on
   the baselines registered with that version; otherwise no Model Monitor API is called;
3. the champion prefix `s3://<artifacts>/<prefix>`: the model read by the pipeline's EvaluateModel step
   and, under `baselines/`, the version's drift baselines read by the monitoring pipeline.

A rejection changes something only when the rejected version is in service (endpoint tags or
champion.json); with no approved version left the endpoint is left as is and the outcome logged as an
error. Ignored events (another group, malformed, pending status, stale, no artifacts) change nothing.
With A/B testing on, an approval adds the newest version as the endpoint's challenger variant beside the
version in service, and an operator event (`{"source": "rul.ab-test"}`, invoked directly by
`pipeline_steps.aws_ab`) shifts the weights or promotes a variant (see `ab_test`).
Every path returns {"action", "reason", ...} and logs it as one JSON line. An endpoint that is busy
(another update running) raises `EndpointBusy` so Lambda's asynchronous retry runs the event again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from lambdas.common.clients import make_clients
from lambdas.common.decisions import DecisionLog
from lambdas.common.handler import run_logged

from . import ab_test, champion, monitoring
from .ab_names import CALLER_OF_RECORD
from .config import ENV_AB_ENABLED, DeployConfig, load_config
from .endpoint import EndpointBusy, EndpointState, create_or_update, endpoint_state, ensure_model_and_config
from .registry import (
    APPROVED,
    REJECTED,
    ApprovalEvent,
    Ignored,
    ModelVersion,
    approved_versions,
    describe_version,
    parse_event,
)

DECISIONS = DecisionLog("deploy_on_approval")
decide = DECISIONS.decide


@dataclass(frozen=True)
class Clients:
    """The AWS clients of one invocation."""

    sagemaker: Any
    s3: Any


def _event_fields(approval: ApprovalEvent) -> dict[str, Any]:
    return {"event_version": approval.version, "event_status": approval.status, "group": approval.group}


def _converge(
    clients: Clients,
    config: DeployConfig,
    target: ModelVersion,
    state: EndpointState,
    champion_version: int | None,
) -> dict[str, str]:
    """Bring endpoint, monitor and champion to `target`; return what happened to each.

    With A/B testing on, `target` joins the version in service as the challenger (`ab_test`)."""
    pair = ab_test.champion_for(clients.sagemaker, config, state, target)
    if pair is None:
        config_name, created = ensure_model_and_config(clients.sagemaker, config, target)
    else:
        config_name, created = ab_test.ensure_ab_config(clients.sagemaker, config, pair)
    # Guardrails need the same variant names before and after: one variant -> two (or back) goes unguarded.
    guarded = (state.challenger is not None) == (pair is not None)
    changes = {"endpoint": create_or_update(clients.sagemaker, config, state, config_name, guarded)}
    if pair is not None and changes["endpoint"] != "unchanged":
        changes["ab_test"] = f"champion v{pair.champion.version}, challenger v{pair.challenger.version}"
    changes["monitoring"] = monitoring.converge(clients.sagemaker, config, target)
    if champion_version == target.version:
        changes["champion"] = "unchanged"
        changes["baselines"] = champion.converge_baselines(clients.s3, config, target, replace=False)
    else:
        changes["baselines"] = champion.publish(clients.s3, config, target)
        changes["champion"] = "published"
    if changes["baselines"].startswith(("skipped", "deleted")):
        decide("warning", changes["baselines"], level=logging.WARNING, target_version=target.version)
    if created:
        changes["created"] = ", ".join(created)
    return changes


def _deploy(
    clients: Clients,
    config: DeployConfig,
    approval: ApprovalEvent,
    target: ModelVersion,
    state: EndpointState,
    champion_version: int | None,
    action: str,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        **_event_fields(approval),
        "target_version": target.version,
        "in_service_version": state.version,
    }
    if not target.model_data_url or not target.image or not target.model_data_url.startswith("s3://"):
        return decide(
            "ignored",
            f"v{target.version} has no servable artifacts (single container with an s3:// ModelDataUrl); "
            "nothing changed",
            level=logging.WARNING,
            **fields,
        )
    changes: dict[str, Any] = _converge(clients, config, target, state, champion_version)
    if all(value == "unchanged" or value.startswith("skipped") for value in changes.values()):
        return decide("no_change", f"v{target.version} is already in service", **fields, **changes)
    reason = {
        "deployed": f"deploying v{target.version}, the newest approved version",
        "rolled_back": f"v{approval.version} was rejected while in service; back to v{target.version}",
    }[action]
    return decide(action, reason, **fields, **changes)


def _on_approved(
    clients: Clients, config: DeployConfig, approval: ApprovalEvent, package: ModelVersion
) -> dict:
    candidates = approved_versions(clients.sagemaker, config.group_name)
    if approval.version not in {version for version, _ in candidates}:  # list may lag the event
        candidates = sorted([*candidates, (approval.version, approval.arn)], reverse=True)
    newest_version, newest_arn = candidates[0]
    target = (
        package if newest_version == approval.version else describe_version(clients.sagemaker, newest_arn)
    )
    state = endpoint_state(clients.sagemaker, config.endpoint_name)
    champion_version = champion.current_version(clients.s3, config)
    return _deploy(clients, config, approval, target, state, champion_version, "deployed")


def _on_rejected(clients: Clients, config: DeployConfig, approval: ApprovalEvent) -> dict:
    state = endpoint_state(clients.sagemaker, config.endpoint_name)
    champion_version = champion.current_version(clients.s3, config)
    fields: dict[str, Any] = {
        **_event_fields(approval),
        "in_service_version": state.version,
        "champion_version": champion_version,
    }
    if approval.version not in state.versions() | {champion_version}:
        return decide("no_change", f"rejected v{approval.version} is not in service", **fields)
    candidates = approved_versions(clients.sagemaker, config.group_name, exclude_arn=approval.arn)
    if not candidates:
        if champion_version is not None:
            champion.clear(clients.s3, config)
        return decide(
            "no_fallback",
            f"rejected v{approval.version} is in service and no other approved version exists: the endpoint "
            "is left unchanged (take it down or approve a version by hand); the champion prefix is reset to "
            "the placeholder",
            level=logging.ERROR,
            **fields,
        )
    target = describe_version(clients.sagemaker, candidates[0][1])
    return _deploy(clients, config, approval, target, state, champion_version, "rolled_back")


def _operate(event: dict[str, Any], config: DeployConfig, clients: Clients) -> dict[str, Any]:
    """An operator's A/B action (`ab_test`): shift the weights or promote a variant."""
    if config.ab_test is None:
        return decide("refused", f"A/B testing is off ({ENV_AB_ENABLED} is not true)", level=logging.WARNING)
    try:
        request = ab_test.parse_operator_event(event)
    except Ignored as reason:
        return decide("ignored", str(reason), level=logging.WARNING)
    fields: dict[str, Any] = {
        "operator_action": request.action,
        "claimed_by": request.claimed_by,
        "caller_of_record": CALLER_OF_RECORD,
    }
    candidates = approved_versions(clients.sagemaker, config.group_name)
    if not candidates:
        return decide("refused", f"group {config.group_name} has no approved version", **fields)
    arn = candidates[0][1]  # any version's ARN names the group; the test's versions come from the endpoint
    try:
        if request.action == "shift":
            return decide(
                "shifted",
                "weights changed",
                **fields,
                **ab_test.shift(clients.sagemaker, config, request, arn),
            )
        winner, changes = ab_test.promote(clients.sagemaker, config, request, arn)
    except ab_test.AbTestError as refusal:
        return decide("refused", str(refusal), level=logging.WARNING, **fields)
    changes["monitoring"] = monitoring.converge(clients.sagemaker, config, winner)
    if champion.current_version(clients.s3, config) != winner.version:
        changes["baselines"] = champion.publish(clients.s3, config, winner)
        changes["champion"] = "published"
    return decide("promoted", f"v{winner.version} serves all traffic", **fields, **changes)


def run(event: Any, config: DeployConfig, clients: Clients) -> dict[str, Any]:
    """Act on one event; pure orchestration over the given clients (the tests call this)."""
    if ab_test.is_operator_event(event):
        return _operate(event, config, clients)
    try:
        approval = parse_event(event, config.group_name)
    except Ignored as reason:
        return decide("ignored", str(reason), level=logging.WARNING)
    if approval.status not in (APPROVED, REJECTED):
        return decide(
            "ignored", f"status {approval.status} needs no deployment change", **_event_fields(approval)
        )
    package = describe_version(clients.sagemaker, approval.arn)
    if package.approval_status != approval.status:
        return decide(
            "ignored",
            f"stale event: v{approval.version} is now {package.approval_status}, a later event handles it",
            **_event_fields(approval),
        )
    if approval.status == REJECTED:
        return _on_rejected(clients, config, approval)
    return _on_approved(clients, config, approval, package)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda handler: validate the environment, build clients, run; failures are logged, then raised."""
    return run_logged(DECISIONS, lambda: _invoke(event), retry=(EndpointBusy,))


def _invoke(event: Any) -> dict[str, Any]:
    config = load_config(os.environ)
    sagemaker, s3 = make_clients("sagemaker", "s3")
    return run(event, config, Clients(sagemaker=sagemaker, s3=s3))
