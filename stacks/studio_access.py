"""What the Studio execution role may do inside its own domain, attached once the domain id is known.

Follows the pattern AWS documents for private spaces ("Give your users access to spaces"): a space or app
is created, changed or deleted only when ``sagemaker:OwnerUserProfileArn`` is the caller's own user
profile, written with the ``${sagemaker:UserProfileName}`` policy variable that Studio puts in the
execution role's session; apps outside any space (no owner key) only under the caller's own profile
in the app ARN. ``CreateApp``/``CreateSpace``/``UpdateSpace`` also require every instance type in the
request to be one of ``studio.app_instance_types``; a request naming none gets the domain's default,
which the Studio stack sets to the first of them. Studio tags what it creates, so tagging is allowed on
creation only (``sagemaker:TaggingAction`` present). Every ARN names the domain id, not ``domain/*``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.iam_conditions import instance_type_guardrail
from stacks.roles import LeastPrivilegePolicy

OWNER_KEY = "sagemaker:OwnerUserProfileArn"
SHARING_KEY = "sagemaker:SpaceSharingType"
CALLER_PROFILE = "${sagemaker:UserProfileName}"  # IAM policy variable, resolved per request by IAM
SPACE_SHARING_TYPES = ["Private", "Shared"]
IN_DOMAIN_REASON = "spaces, apps and user profiles are named by users inside the project's domain"


def attach_studio_access(
    scope: Construct, *, domain_id: str, role: iam.IRole, instance_types: Sequence[str]
) -> LeastPrivilegePolicy:
    """Create the domain-scoped policy and attach it to the Studio execution ``role``."""
    stack = cdk.Stack.of(scope)

    def arn(resource: str, name: str) -> str:
        return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

    spaces, apps = arn("space", f"{domain_id}/*"), arn("app", f"{domain_id}/*")
    owner = {"ArnLike": {OWNER_KEY: arn("user-profile", f"{domain_id}/{CALLER_PROFILE}")}}
    sizes = instance_type_guardrail(instance_types, required=False)
    policy = LeastPrivilegePolicy(scope, "StudioRoleDomainAccess", description="Studio role: its own domain")
    policy.allow("DescribeStudioDomain", ["sagemaker:DescribeDomain"], [arn("domain", domain_id)])
    policy.allow(
        "DescribeDomainResources",
        [
            "sagemaker:DescribeUserProfile",
            "sagemaker:DescribeSpace",
            "sagemaker:DescribeApp",
            "sagemaker:ListTags",
        ],
        [arn("user-profile", f"{domain_id}/*"), spaces, apps],
        wildcard_reason=IN_DOMAIN_REASON,
    )
    _allow_own_spaces(policy, spaces, owner, sizes)
    _allow_apps_in_own_spaces(policy, apps, owner, sizes)
    _allow_profile_apps(policy, arn("app", f"{domain_id}/{CALLER_PROFILE}/*"), sizes)
    policy.allow(
        "TagOnCreate",
        ["sagemaker:AddTags"],
        [spaces, apps],
        conditions={"Null": {"sagemaker:TaggingAction": "false"}},
        wildcard_reason=IN_DOMAIN_REASON,
    )
    policy.acknowledge_wildcards()
    policy.policy.attach_to_role(role)
    return policy


def _allow_profile_apps(policy: LeastPrivilegePolicy, own_apps: str, sizes: dict[str, dict]) -> None:
    """Apps that belong to no space carry no owner key: the caller's profile in the ARN scopes them."""
    no_owner = {"Null": {OWNER_KEY: "true"}}
    reason = "apps outside spaces are named by the user under their own profile"
    policy.allow(
        "CreateOwnProfileApps",
        ["sagemaker:CreateApp"],
        [own_apps],
        conditions={**no_owner, **sizes},
        wildcard_reason=reason,
    )
    policy.allow(
        "DeleteOwnProfileApps",
        ["sagemaker:DeleteApp"],
        [own_apps],
        conditions=no_owner,
        wildcard_reason=reason,
    )


def _allow_own_spaces(
    policy: LeastPrivilegePolicy, spaces: str, owner: dict[str, dict], sizes: dict[str, dict]
) -> None:
    """Spaces whose owner key is the caller's own profile, private or shared."""
    space_owner: dict[str, Mapping[str, object]] = {
        **owner,
        "StringEquals": {SHARING_KEY: SPACE_SHARING_TYPES},
    }
    policy.allow(
        "CreateOrUpdateOwnSpaces",
        ["sagemaker:CreateSpace", "sagemaker:UpdateSpace"],
        [spaces],
        conditions={**space_owner, **sizes},
        wildcard_reason=IN_DOMAIN_REASON,
    )
    policy.allow(
        "DeleteOwnSpaces",
        ["sagemaker:DeleteSpace"],
        [spaces],
        conditions=space_owner,
        wildcard_reason=IN_DOMAIN_REASON,
    )


def _allow_apps_in_own_spaces(
    policy: LeastPrivilegePolicy, apps: str, owner: dict[str, dict], sizes: dict[str, dict]
) -> None:
    """Apps inside a space carry the space's owner key: it must be the caller's own profile."""
    policy.allow(
        "CreateAppsInOwnSpaces",
        ["sagemaker:CreateApp"],
        [apps],
        conditions={**owner, **sizes},
        wildcard_reason=IN_DOMAIN_REASON,
    )
    policy.allow(
        "DeleteAppsInOwnSpaces",
        ["sagemaker:DeleteApp"],
        [apps],
        conditions=owner,
        wildcard_reason=IN_DOMAIN_REASON,
    )
