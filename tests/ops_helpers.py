"""Shared by the Ops stack tests: the settings, the Ops template of the session's app and its resources."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from settings import load_settings

SETTINGS = load_settings()
NAMES = SETTINGS.names


def stack_of(app: cdk.App, stack_id: str) -> cdk.Stack:
    """The app's stack of construct id `stack_id`."""
    stack = app.node.find_child(stack_id)
    assert isinstance(stack, cdk.Stack)
    return stack


def of_type(resources: dict, kind: str) -> dict[str, dict]:
    """The resources of CloudFormation type `kind`, by logical id."""
    return {key: value for key, value in resources.items() if value["Type"] == kind}


# Fixtures, registered by name so that a test module imports the function without its parameters
# shadowing the import. `app` is the session's whole app (tests/conftest.py), built once.
@pytest.fixture(scope="module", name="template")
def template_fixture(app) -> Template:
    """The Ops stack's template."""
    return Template.from_stack(stack_of(app, "Ops"))


@pytest.fixture(scope="module", name="resources")
def resources_fixture(template) -> dict[str, dict]:
    """The Ops template's resources, by logical id."""
    return template.to_json()["Resources"]
