"""cdk-nag wiring: the rule packs the app is checked against and narrow acknowledgements.

cdk-nag 3 runs as a CDK policy-validation plugin. An acknowledgement names one rule and, for rules that
report several findings per resource (``AwsSolutions-IAM5``), one exact finding, and is attached to the
exact construct that raises it, with a reason saying why AWS needs it. cdk-nag also copies every
acknowledgement into the template metadata (``cdk_nag.rules_to_suppress``) as an audit trail.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks
from constructs import Construct

AWS_SOLUTIONS = "AwsSolutions"
NIST_R5 = "NIST.800.53.R5"


def add_nag_checks(app: cdk.App) -> None:
    """Check every stack with the AWS Solutions and NIST 800-53 rev 5 packs; findings fail the synth."""
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True),
        NIST80053R5Checks(app),
    )


def acknowledge(construct: Construct, rule: str, reason: str, *, findings: Iterable[str] = ()) -> None:
    """Acknowledge ``rule`` on ``construct``: the whole rule, or only the listed findings of it.

    ``rule`` is the full id (``AwsSolutions-S1``, ``NIST.800.53.R5-S3BucketReplicationEnabled``);
    ``findings`` are the bracketed parts cdk-nag reports, e.g. ``Resource::*`` for
    ``AwsSolutions-IAM5[Resource::*]``.
    """
    ids = [f"{rule}[{finding}]" for finding in findings] or [rule]
    for rule_id in ids:
        cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


def skip_checkov(resource: cdk.CfnResource, check_id: str, reason: str) -> None:
    """Record a checkov skip (with its reason) in the resource's template metadata."""
    metadata = resource.get_metadata("checkov") or {"skip": []}
    metadata["skip"].append({"id": check_id, "comment": reason})
    resource.add_metadata("checkov", metadata)


def flatten_cfn_reference(node: object) -> str:
    """Render a resolved CloudFormation value the way cdk-nag names it in a finding."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(flatten_cfn_reference(item) for item in items)
        if "Fn::Sub" in node:
            return flatten_cfn_reference(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_cfn_reference(resource)}.{flatten_cfn_reference(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_cfn_reference(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_cfn_reference(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))


def wildcard_findings(scope: Construct, statement: iam.PolicyStatement) -> list[str]:
    """The ``AwsSolutions-IAM5`` findings (``Action::…``/``Resource::…``) an Allow statement raises."""
    resolved = cdk.Stack.of(scope).resolve(statement.to_statement_json())
    if resolved.get("Effect") != "Allow":
        return []
    actions = _as_list(resolved.get("Action"))
    resources = [flatten_cfn_reference(resource) for resource in _as_list(resolved.get("Resource"))]
    return [f"Action::{a}" for a in actions if "*" in a] + [f"Resource::{r}" for r in resources if "*" in r]


def _as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
