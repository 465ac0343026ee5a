"""Settings of A/B testing on the real-time endpoint: a champion and a challenger production variant.

With `enabled`, the deploy-on-approval function serves a newly approved version beside the version in
service, as two production variants of one endpoint (`CHAMPION_VARIANT`, `CHALLENGER_VARIANT`), the
challenger receiving `challenger_weight_percent` of the requests. The operator later shifts the weights
(UpdateEndpointWeightsAndCapacities) and promotes one variant, which leaves a single-variant endpoint.
Serverless endpoints cannot hold two variants; `Settings` refuses that combination.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from lambdas.deploy_on_approval.ab_names import CHALLENGER_VARIANT as CHALLENGER_VARIANT
from lambdas.deploy_on_approval.ab_names import CHAMPION_VARIANT as CHAMPION_VARIANT
from lambdas.deploy_on_approval.config import MIN_SHIFTING_INSTANCES
from settings.types import FrozenModel


class AbTestSettings(FrozenModel):
    """Champion/challenger split of the endpoint's traffic (off by default)."""

    enabled: bool = False
    # Share of the requests sent to the challenger at the start of a test (the plan's 0.5/0.5 is 50).
    challenger_weight_percent: int = Field(default=50, ge=1, le=99)
    # The challenger's instances; the champion keeps serving.instance_count.
    challenger_instance_count: int = Field(default=MIN_SHIFTING_INSTANCES, ge=1, le=8)

    @model_validator(mode="after")
    def _challenger_allows_traffic_shifting(self) -> AbTestSettings:
        # A later approval replaces the challenger by a canary or linear blue/green update of its variant,
        # whose first step SageMaker caps at 50 % of the variant's instances.
        if self.enabled and self.challenger_instance_count < MIN_SHIFTING_INSTANCES:
            raise ValueError(
                f"challenger_instance_count must be at least {MIN_SHIFTING_INSTANCES} with A/B testing on: "
                "a newer approval replaces the challenger by a canary or linear update, whose first step "
                f"holds at most 50 % of the variant's instances (got {self.challenger_instance_count})"
            )
        return self
