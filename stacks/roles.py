"""A role construct that makes least privilege the easy path.

``LeastPrivilegeRole`` creates a named IAM role with one customer-managed policy (no inline policies,
no AWS managed policies). Statements are added with :meth:`LeastPrivilegeRole.allow`; a statement that
uses a wildcard in an action or resource must come with a written reason, which becomes a narrow
cdk-nag acknowledgement of exactly those findings (``AwsSolutions-IAM5[Resource::…]``) on that policy,
applied by :meth:`LeastPrivilegeRole.acknowledge_wildcards` once all statements are added.
A wildcard without a reason raises at synth, so it cannot slip in unexplained.
``LeastPrivilegePolicy`` is the same policy on its own, for a later stack that adds permissions to an
existing role once the resources they name exist (the Studio domain, for the Studio role). Explicit denies
(:meth:`LeastPrivilegeRole.deny`, e.g. "never approve a model") go into the same policy; a deny needs
no reason for a wildcard because it can only take permissions away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.nag import acknowledge, wildcard_findings

IAM5 = "AwsSolutions-IAM5"


class WildcardWithoutReasonError(ValueError):
    """A policy statement uses ``*`` in an action or resource and no reason was given."""


class LeastPrivilegePolicy(Construct):
    """One customer-managed policy (``policy``) whose wildcards each carry a written reason."""

    def __init__(self, scope: Construct, construct_id: str, *, description: str) -> None:
        super().__init__(scope, construct_id)
        self.policy = iam.ManagedPolicy(self, "Policy", description=description)
        self.wildcard_reasons: dict[str, list[str]] = {}

    def allow(
        self,
        sid: str,
        actions: Sequence[str],
        resources: Sequence[str],
        *,
        conditions: Mapping[str, Mapping[str, object]] | None = None,
        wildcard_reason: str | None = None,
    ) -> iam.PolicyStatement:
        """Add an Allow statement; ``wildcard_reason`` is required when it contains a wildcard."""
        statement = iam.PolicyStatement(
            sid=sid,
            actions=list(actions),
            resources=list(resources),
            conditions=dict(conditions) if conditions else None,
        )
        findings = wildcard_findings(self, statement)
        if findings and not wildcard_reason:
            raise WildcardWithoutReasonError(f"{self.node.path} statement {sid} uses wildcards {findings}")
        for finding in findings:
            self.wildcard_reasons.setdefault(finding, []).append(f"{sid}: {wildcard_reason}")
        self.policy.add_statements(statement)
        return statement

    def deny(
        self,
        sid: str,
        actions: Sequence[str],
        resources: Sequence[str],
        *,
        conditions: Mapping[str, Mapping[str, object]] | None = None,
    ) -> iam.PolicyStatement:
        """Add an explicit Deny statement: no Allow in any policy of the role can override it."""
        statement = iam.PolicyStatement(
            sid=sid,
            effect=iam.Effect.DENY,
            actions=list(actions),
            resources=list(resources),
            conditions=dict(conditions) if conditions else None,
        )
        self.policy.add_statements(statement)
        return statement

    def acknowledge_wildcards(self) -> None:
        """Acknowledge each wildcard finding once, with the reasons of every statement that raises it.

        Called once after the last :meth:`allow` (a finding can be acknowledged only once per resource).
        """
        for finding, reasons in self.wildcard_reasons.items():
            acknowledge(self.policy, IAM5, "; ".join(reasons), findings=[finding])


class LeastPrivilegeRole(LeastPrivilegePolicy):
    """A named role (``role``) with a single customer-managed policy (``policy``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        role_name: str,
        assumed_by: iam.IPrincipal,
        description: str,
        extra_trust_actions: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id, description=f"Least-privilege policy of {role_name}")
        self.role_name = role_name
        self.role = iam.Role(
            self, "Role", role_name=role_name, assumed_by=assumed_by, description=description
        )
        if extra_trust_actions:  # e.g. sts:SetSourceIdentity, granted to the same principal and conditions
            trust = self.role.assume_role_policy
            assert trust is not None  # iam.Role always creates its trust policy from `assumed_by`
            trust.add_statements(
                iam.PolicyStatement(actions=list(extra_trust_actions), principals=[assumed_by])
            )
        self.role.add_managed_policy(self.policy)

    @property
    def role_arn(self) -> str:
        """The ARN of the role."""
        return self.role.role_arn
