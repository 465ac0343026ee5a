"""A/B testing on the endpoint: a champion and a challenger production variant, weight shifts, promotion.

With `AB_TEST_ENABLED=true`, an approval no longer replaces the version in service: the newest approved
version joins it as the `Challenger` variant (weight `AB_CHALLENGER_WEIGHT_PERCENT`), the version in
service stays as the `Champion` variant. SageMaker publishes Invocations, ModelLatency and the error
metrics per `VariantName`; each variant has its own model, whose container environment names the variant
(`RUL_VARIANT_NAME`), so its captures land under `<endpoint>/<variant>/`, and the quality job groups by it.

Deployment guardrails (blue/green canary or linear, alarm rollback) need the same variant names in the old
and new endpoint configs. So replacing the challenger of a running test is a guarded blue/green update,
while entering a test (one variant -> two) and leaving it (promotion) are plain UpdateEndpoint calls
without `DeploymentConfig`: SageMaker's default all-at-once blue/green, without alarm rollback. The
challenger's share itself limits the risk of entering a test.

Operator actions arrive as direct invocations `{"source": "rul.ab-test", "action": ...}`:
- `shift` (`challenger_percent`): UpdateEndpointWeightsAndCapacities, no redeployment;
- `promote` (`winner`: champion or challenger): the endpoint goes back to one variant serving the winner,
  the champion prefix follows it; a losing challenger is Rejected in the registry (so that "the newest
  approved version serves", the function's rule, holds again), a losing champion stays Approved.
Each action leaves a note in both model packages' CustomerMetadataProperties (UpdateModelPackage, whose
changes the registry and CloudTrail keep), besides the endpoint change itself. The event's `claimed_by` is
written as a claim ("claimed by X (unverified)"): whoever may invoke the function can put any name there.
The authoritative caller is CloudTrail's record of the Invoke call (a Lambda data event).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .ab_names import CHALLENGER_VARIANT, CHAMPION_VARIANT, OPERATOR_SOURCE
from .config import DeployConfig
from .endpoint import (
    EndpointState,
    _variant,
    capture_config,
    create_or_update,
    endpoint_state,
    ensure_model_and_config,
    model_request,
)
from .registry import APPROVED, REJECTED, Ignored, ModelVersion, describe_version
from .resources import TAG_CHALLENGER, TAG_CHAMPION, bounded_name, create_unless_exists, digest, version_tags

ACTIONS = ("shift", "promote")
WINNERS = ("champion", "challenger")
NOTE_KEY = "AbTestLastAction"
NOTE_TIME_KEY = "AbTestLastActionAt"
MAX_NOTE = 256  # CustomerMetadataProperties values are at most 256 characters


class AbTestError(RuntimeError):
    """An operator action cannot run now (no test in service, endpoint busy); the message says why."""


@dataclass(frozen=True)
class AbPair:
    """The two versions an A/B endpoint serves: the champion and the challenger."""

    champion: ModelVersion
    challenger: ModelVersion


@dataclass(frozen=True)
class OperatorRequest:
    """A validated operator event: shift the challenger's share, or promote a winner."""

    action: str  # one of ACTIONS
    challenger_percent: int | None = None  # shift
    winner: str | None = None  # promote: one of WINNERS
    reason: str = ""
    # Who the event says sent it: anyone allowed to invoke the function can write any name here, so it is
    # recorded as a claim; the caller of record is CloudTrail's (`ab_names.CALLER_OF_RECORD`).
    claimed_by: str = "unknown"


def version_arn(any_version_arn: str, version: int) -> str:
    """The ARN of `version` in the group of `any_version_arn` (`...:model-package/<group>/<n>`)."""
    return f"{any_version_arn.rsplit('/', 1)[0]}/{version}"


def servable(version: ModelVersion) -> bool:
    """The version names an image and an s3:// model archive, so an endpoint can serve it."""
    return bool(version.image and version.model_data_url and version.model_data_url.startswith("s3://"))


def champion_for(
    sagemaker: Any, config: DeployConfig, state: EndpointState, target: ModelVersion
) -> AbPair | None:
    """The pair to serve when `target` joins the version in service as challenger; None for one variant.

    None when A/B testing is off, nothing serves yet, the target already is the champion, or the champion
    is no longer Approved or servable (a rejected champion is dropped, not kept beside its successor).
    """
    if config.ab_test is None or not state.exists:
        return None
    in_service = state.champion if state.challenger is not None else state.version
    if in_service is None or in_service == target.version:
        return None
    champion = describe_version(sagemaker, version_arn(target.arn, in_service))
    if champion.approval_status != APPROVED or not servable(champion):
        return None
    return AbPair(champion=champion, challenger=target)


def ab_config_request(config: DeployConfig, pair: AbPair, models: tuple[str, str]) -> dict[str, Any]:
    """CreateEndpointConfig of the two variants; tags name both versions (the challenger as the version)."""
    assert config.ab_test is not None
    percent = config.ab_test.challenger_percent
    champion = {**_variant(config, models[0]), "VariantName": CHAMPION_VARIANT}
    champion["InitialVariantWeight"] = float(100 - percent)
    challenger = {**_variant(config, models[1]), "VariantName": CHALLENGER_VARIANT}
    challenger.update(
        InitialVariantWeight=float(percent), InitialInstanceCount=config.ab_test.challenger_instance_count
    )
    capture = capture_config(config)
    suffix = f"v{pair.champion.version}-v{pair.challenger.version}-{digest(champion, challenger, capture)}"
    request: dict[str, Any] = {
        "EndpointConfigName": bounded_name(config.endpoint_name, suffix),
        "ProductionVariants": [champion, challenger],
        "KmsKeyId": config.kms_key_arn,
        "Tags": [
            *version_tags(pair.challenger),
            {"Key": TAG_CHAMPION, "Value": str(pair.champion.version)},
            {"Key": TAG_CHALLENGER, "Value": str(pair.challenger.version)},
        ],
    }
    if capture is not None:
        request["DataCaptureConfig"] = capture
    return request


def ensure_ab_config(sagemaker: Any, config: DeployConfig, pair: AbPair) -> tuple[str, list[str]]:
    """Create (or reuse) both variants' models and the two-variant config; (config name, what was new)."""
    created: list[str] = []
    names = []
    for version, variant in ((pair.champion, CHAMPION_VARIANT), (pair.challenger, CHALLENGER_VARIANT)):
        model = model_request(config, version, variant)
        if create_unless_exists(
            lambda model=model: sagemaker.describe_model(ModelName=model["ModelName"]),
            lambda model=model: sagemaker.create_model(**model),
        ):
            created.append(f"model {model['ModelName']}")
        names.append(model["ModelName"])
    request = ab_config_request(config, pair, (names[0], names[1]))
    name = request["EndpointConfigName"]
    if create_unless_exists(
        lambda: sagemaker.describe_endpoint_config(EndpointConfigName=name),
        lambda: sagemaker.create_endpoint_config(**request),
    ):
        created.append(f"endpoint config {name}")
    return name, created


# --- operator actions ------------------------------------------------------------------------------------


def is_operator_event(event: Any) -> bool:
    """The event is an operator's A/B command (`source` is `OPERATOR_SOURCE`), not a registry event."""
    return isinstance(event, dict) and event.get("source") == OPERATOR_SOURCE


def parse_operator_event(event: dict[str, Any]) -> OperatorRequest:
    """Validate an operator event; `Ignored` naming the bad field otherwise."""
    action = event.get("action")
    common: dict[str, Any] = {
        "reason": str(event.get("reason") or ""),
        "claimed_by": str(event.get("claimed_by") or "unknown"),
    }
    if action == "shift":
        percent = event.get("challenger_percent")
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise Ignored(f"shift: challenger_percent must be an integer in [0, 100] (got {percent!r})")
        return OperatorRequest("shift", challenger_percent=percent, **common)
    if action == "promote":
        winner = event.get("winner")
        if winner not in WINNERS:
            raise Ignored(f"promote: winner must be one of {', '.join(WINNERS)} (got {winner!r})")
        return OperatorRequest("promote", winner=winner, **common)
    raise Ignored(f"operator action must be one of {', '.join(ACTIONS)} (got {action!r})")


def claim(request: OperatorRequest) -> str:
    """How a note names the sender: as a claim, since the event's name is not verified."""
    return f"claimed by {request.claimed_by} (unverified)"


def _running_test(sagemaker: Any, config: DeployConfig) -> EndpointState:
    state = endpoint_state(sagemaker, config.endpoint_name)
    if not state.exists or state.champion is None or state.challenger is None:
        raise AbTestError(f"endpoint {config.endpoint_name} serves no A/B test (config {state.config_name})")
    if state.status != "InService":
        raise AbTestError(f"endpoint {config.endpoint_name} is {state.status}; retry once it is InService")
    return state


def note(sagemaker: Any, arn: str, text: str, moment: datetime, **changes: str) -> None:
    """Record an A/B action on a model package (its CustomerMetadataProperties; the registry keeps it),
    with any other UpdateModelPackage `changes` (an approval status) in the same call."""
    sagemaker.update_model_package(
        ModelPackageArn=arn,
        CustomerMetadataProperties={NOTE_KEY: text[:MAX_NOTE], NOTE_TIME_KEY: moment.isoformat()},
        **changes,
    )


def shift(sagemaker: Any, config: DeployConfig, request: OperatorRequest, arn: str) -> dict[str, Any]:
    """Set the challenger's share of requests; both packages get a note. `arn`: any version of the group."""
    state = _running_test(sagemaker, config)
    percent = request.challenger_percent
    assert percent is not None
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=config.endpoint_name,
        DesiredWeightsAndCapacities=[
            {"VariantName": CHAMPION_VARIANT, "DesiredWeight": float(100 - percent)},
            {"VariantName": CHALLENGER_VARIANT, "DesiredWeight": float(percent)},
        ],
    )
    text = (
        f"shift: challenger v{state.challenger} {percent}%, champion v{state.champion} {100 - percent}% "
        f"{claim(request)}: {request.reason}"
    )
    moment = datetime.now(UTC)
    for version in (state.champion, state.challenger):
        assert version is not None
        note(sagemaker, version_arn(arn, version), text, moment)
    return {"champion_version": state.champion, "challenger_version": state.challenger, "note": text}


def promote(
    sagemaker: Any, config: DeployConfig, request: OperatorRequest, arn: str
) -> tuple[ModelVersion, dict[str, Any]]:
    """Serve only the winner (one variant, `AllTraffic`); note both packages, reject a losing challenger.

    Returns the winner (the caller publishes it to the champion prefix) and what happened.
    """
    state = _running_test(sagemaker, config)
    assert state.champion is not None and state.challenger is not None
    winner_version, loser_version = (
        (state.challenger, state.champion)
        if request.winner == "challenger"
        else (state.champion, state.challenger)
    )
    winner = describe_version(sagemaker, version_arn(arn, winner_version))
    if winner.approval_status != APPROVED or not servable(winner):
        # The approver may have rejected it since the test started (its event may still be retrying).
        raise AbTestError(
            f"v{winner_version} is {winner.approval_status or 'not servable'}: only an Approved "
            "version can be promoted"
        )
    config_name, created = ensure_model_and_config(sagemaker, config, winner)
    endpoint = create_or_update(sagemaker, config, state, config_name, guarded=False)
    moment = datetime.now(UTC)
    by = f"{claim(request)}: {request.reason}"
    note(
        sagemaker,
        winner.arn,
        f"promoted: {request.winner} v{winner_version} won over v{loser_version} {by}",
        moment,
    )
    lost = f"retired: lost the A/B test to v{winner_version} {by}"
    registry, rejection = f"v{loser_version} stays Approved (older than the winner)", {}
    if request.winner == "champion":
        registry = f"v{loser_version} Rejected"
        rejection = {"ModelApprovalStatus": REJECTED, "ApprovalDescription": lost[:1024]}
    note(sagemaker, version_arn(arn, loser_version), lost, moment, **rejection)
    changes = {"endpoint": endpoint, "registry": registry, "winner_version": winner_version}
    if created:
        changes["created"] = ", ".join(created)
    return winner, changes
