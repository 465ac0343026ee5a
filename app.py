"""CDK app entry point: ``cdk synth`` runs this file (see cdk.json).

All environment and context lookups happen inside :func:`build_app`, so importing this module
has no side effects and tests can build the app with their own context.
"""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.foundation_stack import FoundationStack

DEFAULT_PROJECT_NAME = "turbofan-rul"


def build_app(context: dict | None = None) -> cdk.App:
    """Build the CDK app with all stacks and the cdk-nag AwsSolutions validation plugin."""
    app = cdk.App(context=context or {})
    project_name = app.node.try_get_context("project_name") or DEFAULT_PROJECT_NAME
    env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=os.environ.get("CDK_DEFAULT_REGION"),
    )

    FoundationStack(app, f"{project_name}-foundation", project_name=project_name, env=env)

    cdk.Tags.of(app).add("project", project_name)
    # cdk-nag 3.x runs as a policy-validation plugin: findings fail the synth and are written to
    # <outdir>/validation-report.json. Acknowledge findings with
    # cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=..., reason=...)).
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


if __name__ == "__main__":
    build_app().synth()
