"""Helpers for tests that synthesize the CDK app (in-process and through the pinned CLI).

How findings surface (aws-cdk-lib 2.275 + cdk-nag 3.0.2):

* cdk-nag 3 is a policy-validation plugin (``cdk.Validations.of(app).add_plugins(...)``). After the
  templates are written, every plugin runs and CDK writes ``<outdir>/validation-report.json``
  (``{"pluginReports": [{"pluginName", "conclusion", "violations": [{"ruleName", "severity",
  "violatingConstructs": [{"constructPath"}]}], "suppressedViolations"}]}``); a plugin without
  violations is left out of ``pluginReports``.
* A failing report makes ``app.synth()`` raise (a jsii ``RuntimeError`` whose message holds the
  report when pytest is running, because aws-cdk-lib then assumes "in-memory" mode) and makes
  ``cdk synth`` exit 1.
* cdk-nag marks its report failed on any violation, warning or error, and drops findings that were
  acknowledged with the plain id (``AwsSolutions-S1``) before CDK sees them. An acknowledgement
  with the namespaced id (``AwsSolutions::AwsSolutions-S1``, the form the failure message prints)
  is applied by CDK instead: the finding is listed under ``suppressedViolations`` with its reason,
  and CDK then recomputes the conclusion from errors only, so warning-level findings in that report
  no longer fail synth. Tests must therefore read the report, not just rely on the exception.
* aws-cdk-lib also runs its built-in "CloudFormation Validate" plugin; the cdk.json flag
  ``@aws-cdk/core:validateAgainstDefaultRules`` turns its errors into synth failures.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import aws_cdk as cdk
from aws_cdk.assertions import Template

from settings import load_settings
from stacks.platform import Platform, build_platform

REPO_ROOT = Path(__file__).resolve().parent.parent
CDK_CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk"
VALIDATION_REPORT = "validation-report.json"
BLOCKING_SEVERITIES = frozenset({"fatal", "error", "warning"})

# The network settings of an imported VPC (two subnets, their zones and route tables).
IMPORTED_NETWORK = {
    "mode": "import",
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "availability_zones": ["eu-west-1a", "eu-west-1b"],
    "route_table_ids": ["rtb-0123456789abcdef0", "rtb-0123456789abcdef1"],
}

CDK_QUIET_ENV = {
    "npm_config_update_notifier": "false",
    "CDK_DISABLE_CLI_TELEMETRY": "true",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
}


def cdk_json_context() -> dict:
    """The ``context`` block of cdk.json, so in-process synths use the same feature flags as the CLI."""
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


def resources_of(templates: dict[str, dict], kind: str) -> list[dict]:
    """The resources of CloudFormation type `kind` in every template."""
    return [
        resource
        for template in templates.values()
        for resource in template.get("Resources", {}).values()
        if resource["Type"] == kind
    ]


def json_text(value) -> str:
    """`value` as canonical JSON text (sorted keys), to search for names and references in it."""
    return json.dumps(value, sort_keys=True)


def cli_env() -> dict[str, str]:
    """Environment for running the CDK CLI from a test: quiet, offline, and not in pytest mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(CDK_QUIET_ENV)
    return env


@dataclass
class SynthOutcome:
    """Result of one in-process synth: the assembly (None if synth raised) and the validation report."""

    outdir: Path
    assembly: cdk.cx_api.CloudAssembly | None
    error: str | None
    report: dict = field(default_factory=dict)

    def violations(self, plugin_prefix: str = "") -> list[dict]:
        """Unacknowledged violations of plugins whose name starts with ``plugin_prefix``."""
        return [
            v
            for rep in self.report.get("pluginReports", [])
            if rep.get("pluginName", "").startswith(plugin_prefix)
            for v in rep.get("violations", [])
        ]

    def blocking(self, plugin_prefix: str = "") -> list[str]:
        """Error and warning findings as ``"<rule> at <construct path>: <description>"`` lines."""
        return [
            f"{v['ruleName']} at {c.get('constructPath', '?')}: {v.get('description', '')}"
            for v in self.violations(plugin_prefix)
            if v.get("severity") in BLOCKING_SEVERITIES
            for c in v.get("violatingConstructs", [{}])
        ]


def synth_with_report(app: cdk.App) -> SynthOutcome:
    """Synthesize ``app`` in-process, catching a validation failure, and load its validation report."""
    outdir = Path(app.outdir)
    assembly, error = None, None
    try:
        assembly = app.synth()
    except Exception as exc:  # jsii surfaces the JS error as RuntimeError
        error = str(exc)
    report_file = outdir / VALIDATION_REPORT
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return SynthOutcome(outdir=outdir, assembly=assembly, error=error, report=report)


@functools.cache
def platform_app(settings_json: str = "{}") -> tuple[cdk.App, Platform]:
    """The platform stacks in an app without cdk-nag, built and synthesized once per settings.

    Cached for the whole test session (jsii start-up and synth take seconds). ``Template.from_stack``
    on these stacks reuses the cached assembly. Without the nag plugins a nag finding cannot hide the
    security-promise assertions; the nag tests run on the full app in ``test_app_synth.py``.
    """
    context = cdk_json_context()
    app = cdk.App(context=context)
    platform = build_platform(app, load_settings(json.loads(settings_json)))
    app.synth()
    return app, platform


def template_of(stack_id: str, settings_json: str = "{}") -> Template:
    """The synthesized template of one platform stack (see :func:`platform_app`)."""
    _, platform = platform_app(settings_json)
    return Template.from_stack(platform.stacks[stack_id])


def policy_statements(template: Template) -> list[dict]:
    """Every statement of every IAM policy (managed, inline policy resource or role inline) in a template."""
    statements: list[dict] = []
    for resource in template.to_json()["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] in {"AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"}:
            statements.extend(props["PolicyDocument"]["Statement"])
        elif resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                statements.extend(policy["PolicyDocument"]["Statement"])
    return statements


def as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]
