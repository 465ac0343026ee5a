"""Where the AWS verbs act: the deployed project's names, ARNs and personas, read from the CDK app's settings.

Settings are loaded as `app.py` loads them: the `settings` and `settings_file` context values of
`cdk.json`, each replaced by `--settings` / `--settings-file` when given (as `cdk deploy -c` replaces
them), validated by `settings.load_settings`. Every name (pipeline, model package group, roles) comes
from `settings.ResourceNames`; the region is the settings' region, because the names carry it. Settings
that still name the placeholder account cannot describe a deployment and are refused. `Target` turns the
names into ARNs, and `access_denied_line` names the persona role a denied verb needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from settings import ResourceNames

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"

# Who may run each verb: ResourceNames role properties (see stacks/iam_personas.py) and how to call them.
PERSONAS = {
    "operator_role": "operator",
    "studio_role": "data-scientist (Studio)",
    "approver_role": "approver",
}
VERB_ROLES = {
    "start": ("operator_role", "studio_role"),
    "status": ("operator_role", "approver_role", "studio_role"),
    "list-executions": ("operator_role", "approver_role", "studio_role"),
    "approve": ("approver_role",),
    "reject": ("approver_role",),
}


class TargetError(ValueError):
    """The settings cannot name a deployment (invalid, or still the placeholder account)."""


@dataclass(frozen=True)
class Target:
    """The deployed project: its names and the account, region and partition its ARNs are in."""

    names: ResourceNames
    account: str
    region: str
    partition: str

    def _arn(self, service: str, resource: str, region: str | None = None) -> str:
        region = self.region if region is None else region
        return f"arn:{self.partition}:{service}:{region}:{self.account}:{resource}"

    def execution_arn(self, execution_id: str) -> str:
        """The ARN of the training pipeline's execution `execution_id`."""
        return self._arn("sagemaker", f"pipeline/{self.names.pipeline}/execution/{execution_id}")

    def model_package_arn(self, version: int) -> str:
        """The ARN of `version` of the project's model package group."""
        return self._arn("sagemaker", f"model-package/{self.names.model_package_group}/{version}")

    def role_arn(self, role_property: str) -> str:
        """The ARN of the IAM role the `ResourceNames` property `role_property` names (no region)."""
        return self._arn("iam", f"role/{getattr(self.names, role_property)}", region="")


def context_values(cdk_json: Path) -> tuple[object, str | None]:
    """The `settings` and `settings_file` context values of `cdk.json` (a relative file is beside it)."""
    if not cdk_json.is_file():
        return None, None
    try:
        context = json.loads(cdk_json.read_text()).get("context", {})
    except (OSError, json.JSONDecodeError) as error:
        raise TargetError(f"cannot read the CDK context of {cdk_json} ({error})") from error
    settings_file = context.get("settings_file")
    if isinstance(settings_file, str) and settings_file:
        settings_file = str(cdk_json.parent / settings_file)
    return context.get("settings"), settings_file or None


def load_target(
    settings_json: str | None,
    settings_file: str | None,
    partition: str = "aws",
    cdk_json: Path | None = None,
) -> Target:
    """Validate the settings like `app.py` and return the deployment they name."""
    from settings import PLACEHOLDER_ACCOUNT, SettingsError, load_settings

    context_settings, context_file = context_values(cdk_json or CDK_JSON)
    raw = settings_json if settings_json is not None else context_settings
    path = settings_file if settings_file is not None else context_file
    try:
        settings = load_settings(raw, path)
    except SettingsError as error:
        raise TargetError(str(error)) from error
    if settings.aws.account == PLACEHOLDER_ACCOUNT:
        raise TargetError(
            f"the settings name the placeholder account {PLACEHOLDER_ACCOUNT}: pass the settings the stacks "
            "were deployed with (--settings-file FILE or --settings JSON, as given to `cdk deploy -c`)"
        )
    return Target(settings.names, settings.aws.account, settings.aws.region, partition)


def access_denied_line(target: Target, verb: str, action: str) -> str:
    """One line: the denied action, and the role(s) of the project allowed to run `verb`."""
    roles = VERB_ROLES[verb]
    described = [f"the {PERSONAS[role]} role {target.role_arn(role)}" for role in roles]
    if len(described) == 1:
        allowed = f"is allowed only to {described[0]}"
    else:
        allowed = f"is allowed to {', '.join(described[:-1])} and {described[-1]}"
    return f"access denied: {action} ({verb}) {allowed}; assume it (e.g. --profile) and retry"
