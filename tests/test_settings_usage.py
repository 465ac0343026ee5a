"""Every settings field is read by something: building the app reads each one at least once.

A field that validates but that no stack, construct or rendered definition reads is a promise the app
does not keep (the issue found `pipeline.max_runtime_minutes` and `training_instance_count` unread).
The test records attribute reads of the frozen settings models while the whole app is built.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from cdk_helpers import IMPORTED_NETWORK, cdk_json_context

import settings as settings_module
from app import build_app

pytestmark = pytest.mark.slow

# The default settings create a VPC; these build the app again on an imported one, so that the fields only
# that mode reads are read too.
IMPORTED_VPC = {
    "network": IMPORTED_NETWORK,
    # Optional stacks on, so their settings are read too.
    "tracking": {"mlflow_server": True},
    "serving": {"ab_test": {"enabled": True}},
    "pipeline": {"spot_training": True},
    "backup": {
        "replication": {
            "destination_bucket_arn": "arn:aws:s3:::dr-copy",
            "destination_key_arn": "arn:aws:kms:eu-central-1:111111111111:key/"
            "1234abcd-12ab-34cd-56ef-1234567890ab",
        }
    },
    "mirror": {
        "enabled": True,
        "endpoint_url": "https://abcd.supabase.co/storage/v1/s3",
        "bucket": "models",
        "secret_arn": "arn:aws:secretsmanager:eu-west-1:111111111111:secret:rul-mirror-AbCdEf",
        "secret_kms_key_arn": "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    },
}


def settings_models() -> list[type[settings_module.FrozenModel]]:
    return [
        value
        for value in vars(settings_module).values()
        if isinstance(value, type)
        and issubclass(value, settings_module.FrozenModel)
        and value is not settings_module.FrozenModel
        and value is not settings_module.Settings
    ]


def test_every_settings_field_is_read_when_the_app_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: dict[str, set[str]] = defaultdict(set)
    original = settings_module.FrozenModel.__getattribute__

    def recording(self, name: str):
        cls = type(self)
        if name in cls.model_fields:
            reads[cls.__name__].add(name)
        return original(self, name)

    monkeypatch.setattr(settings_module.FrozenModel, "__getattribute__", recording)
    build_app(context=cdk_json_context())
    build_app(context={**cdk_json_context(), "settings": IMPORTED_VPC})
    unread = [
        f"{model.__name__}.{field}"
        for model in settings_models()
        for field in model.model_fields
        if field not in reads[model.__name__]
    ]
    assert not unread, f"settings fields that nothing reads: {unread}"
