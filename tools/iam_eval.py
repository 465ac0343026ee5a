"""A small IAM evaluator over synthesized CloudFormation templates, for the authorization matrix.

It reads every role of the templates (``AWS::IAM::Role`` with a ``RoleName``) with the statements
that reach it: inline policies, ``AWS::IAM::Policy`` and ``AWS::IAM::ManagedPolicy`` attached by
``Roles`` or by the role's ``ManagedPolicyArns``, also across stacks through ``Fn::ImportValue``.
Intrinsic functions are rendered to strings (``Ref`` of a named resource gives its name, ``GetAtt``
gives ``${<LogicalId>.<Attr>}``, so an ARN renders the same in every template that uses it).

:func:`allows` answers "may this role make this request?" the way IAM decides within one account:
an explicit Deny that applies wins; otherwise an Allow must match. A request names the action, the
resource and the condition keys it carries. Condition keys the request does not carry are what the
caller chooses: an Allow conditioned on them is satisfiable, a Deny conditioned on them is avoidable.
This is deliberately an over-approximation of what a role can do, which is the safe side for an audit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PSEUDO = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": ""}
NAME_PROPERTIES = ("RoleName", "BucketName", "PipelineName", "FunctionName", "QueueName", "TopicName")


@dataclass
class Role:
    """A role (its name, or ${LogicalId} for CDK's unnamed ones), who may assume it, its statements."""

    name: str
    arn: str
    trusted: list[str]
    statements: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    """One API request: action, resource ARN and the condition keys it carries."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


class Renderer:
    """Renders intrinsic functions of one template to strings, resolving imports of the others."""

    def __init__(self, templates: Mapping[str, dict], exports: Mapping[str, tuple[str, Any]]) -> None:
        self.templates = templates
        self.exports = exports

    def render(self, stack: str, value: Any) -> Any:
        """`value` with every Ref and Fn:: intrinsic of `stack`'s template rendered, lists and maps walked."""
        if isinstance(value, str | int | float | bool) or value is None:
            return value
        if isinstance(value, list):
            return [self.render(stack, item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Ref", "Fn::")):
            return {key: self.render(stack, item) for key, item in value.items()}
        ((function, argument),) = value.items()
        return self._function(stack, function, argument)

    def _function(self, stack: str, function: str, argument: Any) -> Any:
        if function == "Ref":
            return self._ref(stack, argument)
        if function == "Fn::GetAtt":
            logical, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self._get_att(stack, logical, attribute)
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(str(self.render(stack, part)) for part in parts)
        if function == "Fn::ImportValue":
            source_stack, exported = self.exports[self.render(stack, argument)]
            return self.render(source_stack, exported)
        if function == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0]
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self._ref(stack, m.group(1))), text)
        if function == "Fn::Select":
            index, items = argument
            return self.render(stack, items)[int(index)]
        return f"${{{function}}}"

    def _ref(self, stack: str, name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        if "." in name:
            return self._get_att(stack, *name.split(".", 1))
        resource = self.templates[stack].get("Resources", {}).get(name)
        if resource is None:
            return f"${{{name}}}"
        for prop in NAME_PROPERTIES:
            named = resource.get("Properties", {}).get(prop)
            if isinstance(named, str):
                return named
        return f"${{{name}}}"

    def _get_att(self, stack: str, logical: str, attribute: str) -> str:
        resource = self.templates[stack].get("Resources", {}).get(logical, {})
        if resource.get("Type") == "AWS::IAM::Role" and attribute == "Arn":
            return role_arn(self._ref(stack, logical), self.templates[stack])
        return f"${{{logical}.{attribute}}}"


def role_arn(name: str, template: dict) -> str:
    """The ARN of the role named `name` in the account of `template`."""
    account = template_account(template)
    return f"arn:aws:iam::{account}:role/{name}"


def template_account(template: dict) -> str:
    """The first 12-digit account id in an ARN of `template`, else 000000000000."""
    text = json.dumps(template)
    found = re.search(r"arn:aws:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):", text)
    return found.group(1) if found else "000000000000"


def load_templates(cdk_out: Path) -> dict[str, dict]:
    """Every ``*.template.json`` of a cloud assembly folder, by stack name."""
    return {
        path.name.removesuffix(".template.json"): json.loads(path.read_text())
        for path in sorted(Path(cdk_out).glob("*.template.json"))
    }


def _exports(templates: Mapping[str, dict]) -> dict[str, tuple[str, Any]]:
    exports = {}
    for stack, template in templates.items():
        for output in template.get("Outputs", {}).values():
            name = output.get("Export", {}).get("Name")
            if isinstance(name, str):
                exports[name] = (stack, output["Value"])
    return exports


def read_roles(templates: Mapping[str, dict]) -> dict[str, Role]:
    """Every role of the templates with all statements attached to it, by name (or ${LogicalId})."""
    renderer = Renderer(templates, _exports(templates))
    roles: dict[str, Role] = {}
    managed: dict[str, list[dict]] = {}
    for stack, template in templates.items():
        for logical, resource in template.get("Resources", {}).items():
            props = renderer.render(stack, resource.get("Properties", {}))
            if resource["Type"] == "AWS::IAM::ManagedPolicy":
                managed[f"${{{logical}}}"] = props["PolicyDocument"]["Statement"]
            if resource["Type"] == "AWS::IAM::Role":
                # Roles are keyed as a Ref to them renders: the name, or ${LogicalId} for CDK's unnamed ones.
                key = renderer.render(stack, {"Ref": logical})
                roles[key] = _role(props, template, key)
    for stack, template in templates.items():
        for logical, resource in template.get("Resources", {}).items():
            props = renderer.render(stack, resource.get("Properties", {}))
            if resource["Type"] in {"AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"}:
                for name in props.get("Roles", []):
                    if name in roles:
                        roles[name].statements.extend(_as_list(props["PolicyDocument"]["Statement"]))
            if resource["Type"] == "AWS::IAM::Role":
                key = renderer.render(stack, {"Ref": logical})
                for arn in props.get("ManagedPolicyArns", []):
                    roles[key].statements.extend(_as_list(managed.get(arn, [])))
    return _deduplicated(roles)


def _deduplicated(roles: dict[str, Role]) -> dict[str, Role]:
    for role in roles.values():
        unique = {json.dumps(statement, sort_keys=True): statement for statement in role.statements}
        role.statements = list(unique.values())
    return roles


def _role(props: dict, template: dict, name: str) -> Role:
    trusted: list[str] = []
    for statement in _as_list(props.get("AssumeRolePolicyDocument", {}).get("Statement", [])):
        for kind, principals in statement.get("Principal", {}).items():
            trusted.extend(f"{kind}:{principal}" for principal in _as_list(principals))
    statements = [s for p in props.get("Policies", []) for s in _as_list(p["PolicyDocument"]["Statement"])]
    return Role(name=name, arn=role_arn(name, template), trusted=sorted(set(trusted)), statements=statements)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def wildcard_match(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM wildcard matching: ``*`` any run of characters, ``?`` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in str(pattern))
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _condition_holds(operator: str, key: str, expected: Iterable[str], actual: str) -> bool:
    base = operator.split(":")[-1].removesuffix("IfExists")
    values = [str(v) for v in expected]
    if base in {"StringEquals", "ArnEquals"}:
        return actual in values
    if base in {"StringLike", "ArnLike"}:
        return any(wildcard_match(v, actual) for v in values)
    if base in {"StringNotEquals", "ArnNotEquals"}:
        return actual not in values
    if base in {"StringNotLike", "ArnNotLike"}:
        return not any(wildcard_match(v, actual) for v in values)
    if base == "StringEqualsIgnoreCase":
        return actual.lower() in {v.lower() for v in values}
    if base == "Bool":
        return actual.lower() in {v.lower() for v in values}
    if base == "Null":
        return (values[0].lower() == "true") == (actual == "")
    raise ValueError(f"condition operator {operator} on {key} is not supported by this evaluator")


def conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, str], *, deny: bool):
    """All conditions hold for the request; keys it does not carry are the caller's choice (see module)."""
    for operator, pairs in conditions.items():
        for key, expected in pairs.items():
            if key not in context:
                if deny:
                    return False
                continue
            if not _condition_holds(operator, key, _as_list(expected), context[key]):
                return False
    return True


def statement_matches(statement: Mapping[str, Any], request: Request) -> bool:
    """Action and resource of the statement cover the request (conditions aside)."""
    actions = _as_list(statement.get("Action", []))
    if "NotAction" in statement:
        if any(
            wildcard_match(a, request.action, case_sensitive=False) for a in _as_list(statement["NotAction"])
        ):
            return False
    elif not any(wildcard_match(a, request.action, case_sensitive=False) for a in actions):
        return False
    resources = _as_list(statement.get("Resource", "*"))
    return any(wildcard_match(r, request.resource) for r in resources)


def allows(statements: Iterable[Mapping[str, Any]], request: Request) -> bool:
    """IAM's decision for one principal's identity statements: explicit deny, then allow, else deny."""
    statements = list(statements)
    for statement in statements:
        if (
            statement.get("Effect") == "Deny"
            and statement_matches(statement, request)
            and conditions_hold(statement.get("Condition", {}), request.context, deny=True)
        ):
            return False
    return any(
        statement.get("Effect") == "Allow"
        and statement_matches(statement, request)
        and conditions_hold(statement.get("Condition", {}), request.context, deny=False)
        for statement in statements
    )
