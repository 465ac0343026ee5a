"""Synthesis tests for the CDK app: CDK assertions, cdk-nag (AwsSolutions) and the real CLI + cfn-lint.

jsii start-up makes every synth slow, so the app is synthesized once per session in-process and
once through ``node_modules/.bin/cdk``; the tests only inspect those results.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from cdk_helpers import CDK_CLI, REPO_ROOT, SynthOutcome, cdk_json_context, cli_env, synth_with_report

from app import DEFAULT_PROJECT_NAME, build_app
from stacks.foundation_stack import FoundationStack

pytestmark = pytest.mark.slow

CFN_LINT = Path(sys.executable).parent / "cfn-lint"
FOUNDATION_STACK_ID = f"{DEFAULT_PROJECT_NAME}-foundation"


@pytest.fixture(scope="session")
def app() -> cdk.App:
    return build_app(context=cdk_json_context())


@pytest.fixture(scope="session")
def synth_outcome(app: cdk.App) -> SynthOutcome:
    return synth_with_report(app)


@pytest.fixture(scope="session")
def foundation_template() -> Template:
    # A bare app without cdk-nag, so a nag finding elsewhere does not hide these assertions.
    bare_app = cdk.App(context=cdk_json_context())
    stack = FoundationStack(bare_app, FOUNDATION_STACK_ID, project_name=DEFAULT_PROJECT_NAME)
    return Template.from_stack(stack)


@pytest.fixture(scope="session")
def cli_synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path, float]:
    if not CDK_CLI.exists():
        pytest.skip(f"{CDK_CLI.relative_to(REPO_ROOT)} is missing: run `npm install --no-audit --no-fund`")
    outdir = tmp_path_factory.mktemp("cdk.out")
    start = time.monotonic()
    proc = subprocess.run(
        [str(CDK_CLI), "synth", "--quiet", "-o", str(outdir)],
        cwd=REPO_ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, outdir, time.monotonic() - start


# (a) CDK assertions on the foundation stack


def test_data_key_rotates_and_is_retained(foundation_template: Template) -> None:
    foundation_template.resource_count_is("AWS::KMS::Key", 1)
    foundation_template.has_resource(
        "AWS::KMS::Key",
        {
            "Properties": Match.object_like({"EnableKeyRotation": True, "Description": Match.any_value()}),
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )


def test_data_key_alias(foundation_template: Template) -> None:
    foundation_template.has_resource_properties(
        "AWS::KMS::Alias", {"AliasName": f"alias/{DEFAULT_PROJECT_NAME}-data"}
    )


def test_project_name_comes_from_context() -> None:
    app = build_app(context={"project_name": "demo-rul"})
    stack = app.node.find_child("demo-rul-foundation")
    assert isinstance(stack, FoundationStack)
    assert stack.project_name == "demo-rul"


# (b) cdk-nag AwsSolutions, run in-process through CDK policy validation


def test_app_synthesizes_in_process(synth_outcome: SynthOutcome) -> None:
    assert synth_outcome.error is None, synth_outcome.error
    assert synth_outcome.assembly is not None
    assert (synth_outcome.outdir / "validation-report.json").exists()


def test_no_cdk_nag_findings(synth_outcome: SynthOutcome) -> None:
    findings = synth_outcome.blocking("AwsSolutions")
    assert not findings, "cdk-nag AwsSolutions findings:\n" + "\n".join(findings)


def test_no_other_validation_findings(synth_outcome: SynthOutcome) -> None:
    # Built-in "CloudFormation Validate" plugin and construct annotations.
    findings = [f for f in synth_outcome.blocking() if not f.startswith("AwsSolutions-")]
    assert not findings, "validation report findings:\n" + "\n".join(findings)


def test_cdk_nag_finding_fails_synth() -> None:
    """Negative control: an unencrypted, unlogged bucket must fail synth and show up in the report."""
    app = build_app(context=cdk_json_context())
    stack = app.node.find_child(FOUNDATION_STACK_ID)
    s3.CfnBucket(stack, "NonCompliantBucket")
    outcome = synth_with_report(app)
    assert outcome.error is not None and "ValidationFailed" in outcome.error
    rules = {v["ruleName"] for v in outcome.violations("AwsSolutions")}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules, rules
    assert outcome.blocking("AwsSolutions")


# (c) the pinned CDK CLI and cfn-lint on its output


def test_cli_synth_exits_zero(cli_synth: tuple[subprocess.CompletedProcess, Path, float]) -> None:
    proc, outdir, seconds = cli_synth
    assert proc.returncode == 0, f"cdk synth failed after {seconds:.0f} s:\n{proc.stdout}\n{proc.stderr}"
    assert list(outdir.glob("*.template.json"))


def test_cfn_lint_clean(cli_synth: tuple[subprocess.CompletedProcess, Path, float]) -> None:
    proc, outdir, _ = cli_synth
    if proc.returncode != 0:
        pytest.fail("cdk synth failed; see test_cli_synth_exits_zero")
    templates = sorted(outdir.glob("*.template.json"))
    assert templates
    lint = subprocess.run(
        [str(CFN_LINT), "--format", "parseable", *map(str, templates)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # cfn-lint exit code is a bit mask: 2 errors, 4 warnings, 8 informational (not fatal here).
    assert lint.returncode & 0b0111 == 0, f"cfn-lint findings:\n{lint.stdout}{lint.stderr}"
