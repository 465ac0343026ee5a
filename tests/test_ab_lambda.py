"""A/B testing in the deploy-on-approval function: create, replace, shift and promote, in the mocked account.

moto serves the registry, models, endpoint configs and endpoints; UpdateEndpoint and
UpdateEndpointWeightsAndCapacities (absent from moto 5.2.5) go to a botocore Stubber, which validates
each request against the service model and compares it with the expected one.
"""

from __future__ import annotations

import pytest
from botocore.stub import ANY
from deploy_world import (
    ACCOUNT,
    AWS_TEST_CREDENTIALS,
    ENDPOINT,
    ENVIRONMENT,
    REGION,
    RoutedSageMaker,
    World,
)
from moto import mock_aws

from lambdas.deploy_on_approval import ab_test, handler
from lambdas.deploy_on_approval.ab_names import CALLER_OF_RECORD
from lambdas.deploy_on_approval.config import MIN_SHIFTING_INSTANCES, ConfigError, load_config
from settings import SettingsError, load_settings

AB = {
    **ENVIRONMENT,
    "AB_TEST_ENABLED": "true",
    "AB_CHALLENGER_WEIGHT_PERCENT": "20",
    "AB_CHALLENGER_INSTANCE_COUNT": "3",
}
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"


class AbRouted(RoutedSageMaker):
    """Also sends UpdateEndpointWeightsAndCapacities to the Stubber."""

    def __getattr__(self, name):
        if name == "update_endpoint_weights_and_capacities":
            return getattr(self.stubbed, name)
        return super().__getattr__(name)


@pytest.fixture
def aws(monkeypatch):
    for name, value in AWS_TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def ab_world(environment: dict[str, str] = AB) -> World:
    world = World(environment)
    world.clients = handler.Clients(sagemaker=AbRouted(world.moto, world.stubber.client), s3=world.s3)
    return world


def expect_plain_update(world: World) -> None:
    """UpdateEndpoint without DeploymentConfig: the variant names change, so guardrails cannot apply."""
    expected = {"EndpointName": ENDPOINT, "EndpointConfigName": ANY}
    world.stubber.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, expected)


def operator(action: str, **fields) -> dict:
    return {"source": ab_test.OPERATOR_SOURCE, "action": action, "claimed_by": "tester", **fields}


def metadata(world: World, arn: str) -> dict:
    """The package's notes. moto 5.2.5 blanks the status of an UpdateModelPackage that does not name one
    (AWS keeps it), so the tests check status changes in the recorded requests (`status_changes`)."""
    package = world.moto.describe_model_package(ModelPackageName=arn)
    return package.get("CustomerMetadataProperties", {})


def status_changes(world: World) -> dict[str, str]:
    return {
        call["ModelPackageArn"]: call["ModelApprovalStatus"]
        for call in world.params("UpdateModelPackage")
        if "ModelApprovalStatus" in call
    }


def start_test(world: World) -> tuple[str, str]:
    v1, v2 = world.register(1), world.register(2)
    world.run(world.set_status(v1, "Approved"))
    expect_plain_update(world)
    result = world.run(world.set_status(v2, "Approved"))
    assert (result["action"], result["ab_test"]) == ("deployed", "champion v1, challenger v2"), result
    return v1, v2


def test_an_approval_joins_the_version_in_service_as_challenger(aws):
    world = ab_world()
    start_test(world)

    (config,) = world.params("CreateEndpointConfig")[-1:]
    champion, challenger = config["ProductionVariants"]
    assert (champion["VariantName"], champion["InitialVariantWeight"]) == ("Champion", 80.0)
    assert (challenger["VariantName"], challenger["InitialVariantWeight"]) == ("Challenger", 20.0)
    assert (champion["InitialInstanceCount"], challenger["InitialInstanceCount"]) == (2, 3)
    assert champion["ModelName"] != challenger["ModelName"]
    tags = {tag["Key"]: tag["Value"] for tag in config["Tags"]}
    assert (tags["AbChampionVersion"], tags["AbChallengerVersion"], tags["ModelPackageVersion"]) == (
        "1",
        "2",
        "2",
    )
    assert world.serving_config()["EndpointConfigName"] == config["EndpointConfigName"]
    assert world.champion()["version"] == 2  # the pipeline compares its next candidate with the newest


def test_a_new_approval_during_a_test_replaces_the_challenger_blue_green(aws):
    world = ab_world()
    start_test(world)
    v3 = world.register(3)
    world.expect_update()  # same variant names: canary under the rollback alarms

    result = world.run(world.set_status(v3, "Approved"))

    assert (result["endpoint"], result["ab_test"]) == ("updated", "champion v1, challenger v3"), result
    names = [variant["VariantName"] for variant in world.serving_config()["ProductionVariants"]]
    assert names == ["Champion", "Challenger"]


def test_shift_changes_weights_and_notes_both_packages(aws):
    world = ab_world()
    v1, v2 = start_test(world)
    world.stubber.add_response(
        "update_endpoint_weights_and_capacities",
        {"EndpointArn": ENDPOINT_ARN},
        {
            "EndpointName": ENDPOINT,
            "DesiredWeightsAndCapacities": [
                {"VariantName": "Champion", "DesiredWeight": 30.0},
                {"VariantName": "Challenger", "DesiredWeight": 70.0},
            ],
        },
    )

    result = world.run(operator("shift", challenger_percent=70, reason="challenger RMSE lower"))

    assert result["action"] == "shifted", result
    for arn in (v1, v2):
        note = metadata(world, arn)
        assert note["AbTestLastAction"].startswith(
            "shift: challenger v2 70%, champion v1 30% claimed by tester (unverified)"
        )
    assert status_changes(world) == {}
    assert (result["claimed_by"], result["caller_of_record"]) == ("tester", CALLER_OF_RECORD)
    assert "requested_by" not in result


@pytest.mark.parametrize(
    ("winner", "serving", "loser_status"), [("challenger", 2, "Approved"), ("champion", 1, "Rejected")]
)
def test_promote_serves_only_the_winner_and_records_it(aws, winner, serving, loser_status):
    world = ab_world()
    v1, v2 = start_test(world)
    expect_plain_update(world)

    result = world.run(operator("promote", winner=winner, reason="two weeks of late labels"))

    assert (result["action"], result["winner_version"]) == ("promoted", serving), result
    (variant,) = world.serving_config()["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic" and f"-v{serving}-" in variant["ModelName"]
    winner_arn, loser_arn = (v2, v1) if winner == "challenger" else (v1, v2)
    assert metadata(world, winner_arn)["AbTestLastAction"].startswith(f"promoted: {winner} v{serving} won")
    loser = metadata(world, loser_arn)
    assert loser["AbTestLastAction"].startswith("retired: lost the A/B test")
    assert status_changes(world) == ({loser_arn: "Rejected"} if loser_status == "Rejected" else {})
    assert world.champion()["version"] == serving


def test_a_challenger_rejected_since_the_test_started_cannot_be_promoted(aws):
    world = ab_world()
    _, v2 = start_test(world)
    world.set_status(v2, "Rejected")  # its event not handled yet (e.g. retrying on EndpointBusy)

    result = world.run(operator("promote", winner="challenger", reason="looked better"))

    assert result["action"] == "refused" and "only an Approved version" in result["reason"], result
    assert [name for name in world.mutations() if name.startswith("Update")] == []


def test_rejecting_the_challenger_during_a_test_returns_to_the_champion_alone(aws):
    world = ab_world()
    _, v2 = start_test(world)
    expect_plain_update(world)  # two variants -> one: no guardrails

    result = world.run(world.set_status(v2, "Rejected"))

    assert (result["action"], result["target_version"]) == ("rolled_back", 1), result
    (variant,) = world.serving_config()["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic" and "-v1-" in variant["ModelName"]
    assert world.champion()["version"] == 1


def test_operator_actions_are_refused_without_a_running_test(aws):
    world = ab_world()
    world.run(world.set_status(world.register(1), "Approved"))

    result = world.run(operator("shift", challenger_percent=50))

    assert result["action"] == "refused" and "serves no A/B test" in result["reason"], result
    assert [name for name in world.mutations() if name.startswith("Update")] == []


@pytest.mark.parametrize(
    "event",
    [
        operator("shift", challenger_percent=101),
        operator("shift"),
        operator("promote", winner="x"),
        operator("drop"),
    ],
)
def test_malformed_operator_events_change_nothing(aws, event):
    world = ab_world()
    result = world.run(event)
    assert result["action"] == "ignored" and world.mutations() == [], result


def test_with_ab_off_an_operator_event_is_refused(aws):
    world = World(ENVIRONMENT)
    assert world.run(operator("shift", challenger_percent=50))["action"] == "refused"


def test_container_capture_names_each_variant_in_its_model(aws):
    world = ab_world({**AB, "DATA_CAPTURE_MODE": "container"})
    start_test(world)
    variants = {
        model["PrimaryContainer"]["Environment"]["RUL_VARIANT_NAME"] for model in world.params("CreateModel")
    }
    # The champion's model is new too: its environment names its new variant.
    assert variants == {"Challenger", "Champion"}


def test_the_function_refuses_ab_on_serverless():
    serverless = {**AB, "SERVING_MODE": "serverless", "DATA_CAPTURE_MODE": "container"}
    with pytest.raises(ConfigError, match="AB_TEST_ENABLED"):
        load_config(serverless)
    with pytest.raises(ConfigError, match="AB_CHALLENGER_WEIGHT_PERCENT"):
        load_config({**AB, "AB_CHALLENGER_WEIGHT_PERCENT": "100"})


def test_settings_refuse_ab_on_serverless_and_bound_the_weight():
    with pytest.raises(SettingsError, match=r"serving\.ab_test\.enabled.*one production variant"):
        load_settings(
            {
                "serving": {"mode": "serverless", "ab_test": {"enabled": True}},
                "security": {"data_perimeter": False},
            }
        )
    with pytest.raises(SettingsError, match="challenger_weight_percent"):
        load_settings({"serving": {"ab_test": {"enabled": True, "challenger_weight_percent": 0}}})
    assert (
        load_settings({"serving": {"ab_test": {"enabled": True}}}).serving.ab_test.challenger_weight_percent
        == 50
    )


def test_a_requested_by_field_is_not_taken_as_the_sender():
    event = {"source": ab_test.OPERATOR_SOURCE, "action": "shift", "challenger_percent": 5}
    request = ab_test.parse_operator_event({**event, "requested_by": "admin"})
    assert request.claimed_by == "unknown"
    assert ab_test.claim(request) == "claimed by unknown (unverified)"


def test_a_one_instance_challenger_is_refused_by_the_function_and_the_settings():
    # SageMaker caps a canary at 50 % of the variant's instances, a linear step at 10-50 %.
    with pytest.raises(ConfigError, match=r"AB_CHALLENGER_INSTANCE_COUNT: must be at least 2.*\(got 1\)"):
        load_config({**AB, "AB_CHALLENGER_INSTANCE_COUNT": "1"})
    unset = {name: value for name, value in AB.items() if name != "AB_CHALLENGER_INSTANCE_COUNT"}
    assert load_config(unset).ab_test.challenger_instance_count == MIN_SHIFTING_INSTANCES
    with pytest.raises(SettingsError, match=r"challenger_instance_count must be at least 2.*\(got 1\)"):
        load_settings({"serving": {"ab_test": {"enabled": True, "challenger_instance_count": 1}}})
    off = load_settings({"serving": {"ab_test": {"challenger_instance_count": 1}}})
    assert off.serving.ab_test.challenger_instance_count == 1  # unused while A/B is off
    default = load_settings({"serving": {"ab_test": {"enabled": True}}}).serving.ab_test
    assert default.challenger_instance_count == MIN_SHIFTING_INSTANCES
