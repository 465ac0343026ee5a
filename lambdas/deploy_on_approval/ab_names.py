"""The A/B test's spellings shared beyond the deploy function: the variant names and the operator source.

The settings, the operator command (`pipeline_steps.aws_ab`) and the local router (`local_runner.ab_split`)
import them from here, where the function's asset can see them too. Standard library only.
"""

from __future__ import annotations

CHAMPION_VARIANT = "Champion"
CHALLENGER_VARIANT = "Challenger"
# The `source` of an operator's A/B command, sent to the function by a direct invocation.
OPERATOR_SOURCE = "rul.ab-test"
# Who sent an operator command, as the record states it: the event's name is only a claim.
CALLER_OF_RECORD = "CloudTrail's Invoke data event of this function (the event's claimed_by is unverified)"
