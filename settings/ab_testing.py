"""Settings of A/B testing on the real-time endpoint: a champion and a challenger production variant.

With `enabled`, the deploy-on-approval function serves a newly approved version beside the version in
service, as two production variants of one endpoint (`CHAMPION_VARIANT`, `CHALLENGER_VARIANT`), the
challenger receiving `challenger_weight_percent` of the requests. The operator later shifts the weights
(UpdateEndpointWeightsAndCapacities) and promotes one variant, which leaves a single-variant endpoint.
Serverless endpoints cannot hold two variants; `Settings` refuses that combination.
"""

from __future__ import annotations

from pydantic import Field

from settings.types import FrozenModel

# Shared with lambdas/deploy_on_approval/ab_test.py and local_runner/ab_split.py (a test checks they agree).
CHAMPION_VARIANT = "Champion"
CHALLENGER_VARIANT = "Challenger"


class AbTestSettings(FrozenModel):
    """Champion/challenger split of the endpoint's traffic (off by default)."""

    enabled: bool = False
    # Share of the requests sent to the challenger at the start of a test (the plan's 0.5/0.5 is 50).
    challenger_weight_percent: int = Field(default=50, ge=1, le=99)
    # The challenger's instances; the champion keeps serving.instance_count. 1 is enough for a test, but
    # a later approval replaces the challenger by a blue/green update whose canary needs 2 in the fleet.
    challenger_instance_count: int = Field(default=1, ge=1, le=8)
