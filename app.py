"""CDK app entry point: ``cdk synth`` runs this file (see cdk.json).

The edge of the app: it reads the ``settings`` (and optional ``settings_file``) context values,
validates them into one :class:`settings.Settings`, builds the platform stacks and adds the cdk-nag
checks. Importing this module has no side effects; tests build the app with their own context.
"""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk

from settings import Settings, SettingsError, load_settings
from stacks.ml_stack import MlStack
from stacks.nag import add_nag_checks
from stacks.ops_stack import OpsStack
from stacks.platform import Platform, build_platform, stack_props
from stacks.tracking_stack import TrackingStack


def settings_from_context(app: cdk.App) -> Settings:
    """Validate the ``settings`` context value over the optional ``settings_file`` context value."""
    return load_settings(app.node.try_get_context("settings"), app.node.try_get_context("settings_file"))


def build_app(context: dict | None = None, outdir: str | None = None) -> cdk.App:
    """Build the CDK app: every platform stack, project tags and the cdk-nag validation plugins."""
    app = cdk.App(context=context or {}, outdir=outdir)
    settings = settings_from_context(app)
    platform: Platform = build_platform(app, settings)
    ml = MlStack(
        app,
        "Ml",
        platform=platform,
        pipeline=settings.pipeline,
        build_dir=Path(app.outdir) / "ml-build",
        **stack_props(settings, "Ml"),
    )
    ml.add_dependency(platform.stacks["Iam"], "the pipeline runs as the project's roles")
    tracking = None
    if settings.tracking.mlflow_server:
        tracking = TrackingStack(
            app,
            "Tracking",
            platform=platform,
            tracking=settings.tracking,
            **stack_props(settings, "Tracking"),
        )
        tracking.add_stack_dependency(
            platform.stacks["Studio"], "the Studio role gets the MLflow permissions"
        )
    ops = OpsStack(
        app,
        "Ops",
        platform=platform,
        image_uri=ml.job_image_uri,
        mlflow_server_arn=tracking.server_arn if tracking else None,
        **stack_props(settings, "Ops"),
    )
    ops.add_stack_dependency(
        ml, "the rules start the pipeline and deploy versions of the model package group"
    )
    cdk.Tags.of(app).add("project", settings.project.name)
    cdk.Tags.of(app).add("environment", settings.project.environment)
    add_nag_checks(app)
    return app


def main() -> int:
    """Synthesize the app; exit status 2, with the problem on stderr, when the settings are invalid."""
    try:
        build_app().synth()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
