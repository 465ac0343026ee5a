"""Synthesis tests for the whole CDK app: cdk-nag (AwsSolutions + NIST 800-53 rev 5), the real CLI + cfn-lint.

jsii start-up makes every synth slow, so the app is synthesized once per session in-process and
once through ``node_modules/.bin/cdk``; the tests only inspect those results. Per-stack security
promises are asserted in ``test_stacks_*.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from cdk_helpers import CDK_CLI, REPO_ROOT, SynthOutcome, cdk_json_context, cli_env, synth_with_report

from app import build_app
from settings import SettingsError
from stacks.platform import STACK_IDS

pytestmark = pytest.mark.slow

CFN_LINT = Path(sys.executable).parent / "cfn-lint"
NAG_PACKS = ("AwsSolutions", "NIST.800.53.R5")


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


# (a) the app and its settings


def test_every_platform_stack_is_in_the_app(app: cdk.App) -> None:
    stacks = {child.node.id for child in app.node.children if isinstance(child, cdk.Stack)}
    assert set(STACK_IDS) <= stacks


def test_stacks_use_settings_environment_and_prefix() -> None:
    context = {**cdk_json_context(), "settings": {"project": {"name": "demo-rul", "environment": "prod"}}}
    app = build_app(context=context)
    stack = app.node.find_child("Storage")
    assert isinstance(stack, cdk.Stack)
    assert stack.stack_name == "demo-rul-prod-storage"
    assert (stack.account, stack.region) == ("111111111111", "eu-west-1")


def test_settings_json_string_from_cli_context_is_accepted() -> None:
    context = {**cdk_json_context(), "settings": json.dumps({"aws": {"account": "222222222222"}})}
    stack = build_app(context=context).node.find_child("Iam")
    assert stack.account == "222222222222"


def test_bad_settings_stop_the_app_with_field_and_value() -> None:
    context = {**cdk_json_context(), "settings": {"serving": {"data_capture_percent": 150}}}
    with pytest.raises(SettingsError, match=r"serving\.data_capture_percent.*150"):
        build_app(context=context)


# (b) cdk-nag, run in-process through CDK policy validation


def test_app_synthesizes_in_process(synth_outcome: SynthOutcome) -> None:
    assert synth_outcome.error is None, synth_outcome.error
    assert synth_outcome.assembly is not None
    assert (synth_outcome.outdir / "validation-report.json").exists()


@pytest.mark.parametrize("pack", NAG_PACKS)
def test_no_cdk_nag_findings(synth_outcome: SynthOutcome, pack: str) -> None:
    findings = synth_outcome.blocking(pack)
    assert not findings, f"cdk-nag {pack} findings:\n" + "\n".join(findings)


def test_no_other_validation_findings(synth_outcome: SynthOutcome) -> None:
    # Built-in "CloudFormation Validate" plugin and construct annotations.
    findings = [f for f in synth_outcome.blocking() if not f.startswith(NAG_PACKS)]
    assert not findings, "validation report findings:\n" + "\n".join(findings)


def test_acknowledgements_are_narrow_and_explained(templates: dict[str, dict]) -> None:
    """Every acknowledgement has a reason; IAM5 ones name one exact finding, never the bare rule."""
    acknowledged = [
        rule
        for template in templates.values()
        for resource in template["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert acknowledged
    for rule in acknowledged:
        assert len(rule["reason"]) >= 20, rule
        if rule["id"].startswith("AwsSolutions-IAM5"):
            assert rule["id"].startswith("AwsSolutions-IAM5[") and rule["id"].endswith("]"), rule


def test_no_acknowledgement_on_a_whole_stack(app: cdk.App) -> None:
    for stack in (child for child in app.node.children if isinstance(child, cdk.Stack)):
        keys = [entry.type for entry in stack.node.metadata]
        assert cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY not in keys, stack.node.id


def test_cdk_nag_finding_fails_synth() -> None:
    """Negative control: an unencrypted, unlogged bucket must fail synth and show up in the report."""
    app = build_app(context=cdk_json_context())
    stack = app.node.find_child("Storage")
    s3.CfnBucket(stack, "NonCompliantBucket")
    outcome = synth_with_report(app)
    assert outcome.error is not None and "ValidationFailed" in outcome.error
    rules = {v["ruleName"] for v in outcome.violations("AwsSolutions")}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules, rules
    assert outcome.blocking("NIST.800.53.R5")


# (c) the pinned CDK CLI and cfn-lint on its output


def test_cli_synth_exits_zero(cli_synth: tuple[subprocess.CompletedProcess, Path, float]) -> None:
    proc, outdir, seconds = cli_synth
    assert proc.returncode == 0, f"cdk synth failed after {seconds:.0f} s:\n{proc.stdout}\n{proc.stderr}"
    names = {path.name.removesuffix(".template.json") for path in outdir.glob("*.template.json")}
    assert set(STACK_IDS) <= names


def test_cli_synth_needs_no_lookups(cli_synth: tuple[subprocess.CompletedProcess, Path, float]) -> None:
    _, outdir, _ = cli_synth
    manifest = json.loads((outdir / "manifest.json").read_text())
    assert not manifest.get("missing"), manifest.get("missing")


def test_cfn_lint_clean(cli_synth: tuple[subprocess.CompletedProcess, Path, float]) -> None:
    proc, outdir, _ = cli_synth
    if proc.returncode != 0:
        pytest.fail("cdk synth failed; see test_cli_synth_exits_zero")
    templates = sorted(outdir.glob("*.template.json"))
    assert len(templates) >= len(STACK_IDS)
    lint = subprocess.run(
        [str(CFN_LINT), "--format", "parseable", *map(str, templates)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # cfn-lint exit code is a bit mask: 2 errors, 4 warnings, 8 informational (not fatal here).
    assert lint.returncode & 0b0111 == 0, f"cfn-lint findings:\n{lint.stdout}{lint.stderr}"
