"""`lambdas/common`: the config reader, the decision line, the S3-URI parser, the handler wrapper and the
clients, and that every function uses this one copy (test_lambda_asset.py imports them from the asset)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from lambdas.common.clients import MAX_ATTEMPTS, make_clients
from lambdas.common.config import NAME_PATTERN, ConfigError, EnvReader
from lambdas.common.decisions import DecisionLog, Ignored
from lambdas.common.handler import run_logged
from lambdas.common.s3uri import S3Uri, S3UriError, is_s3_uri, parse_s3_uri

LAMBDAS_DIR = Path(__file__).resolve().parent.parent / "lambdas"
FUNCTIONS = (
    "start_pipeline",
    "deploy_on_approval",
    "publish_model_metrics",
    "backup_registry",
    "mirror_model",
)


def test_the_reader_collects_every_problem_before_raising():
    read = EnvReader({"GROUP": "bad name", "COUNT": "7", "FLAG": "maybe"})
    read.text("GROUP", NAME_PATTERN, expect="a model package group name")
    read.text("MISSING")
    assert read.integer("COUNT", 1, 5) == 7
    assert read.flag("FLAG", default=False) is False
    assert read.integer("UNSET", 1, 5, default=3) == 3
    with pytest.raises(ConfigError) as error:
        read.check("test-function")
    message = str(error.value)
    assert message.startswith("invalid test-function configuration: ")
    assert "GROUP: must be a model package group name (got 'bad name')" in message
    assert "MISSING: required (got None)" in message
    assert "COUNT: must be in [1, 5] (got 7)" in message
    assert "FLAG: must be true or false (got 'maybe')" in message


def test_a_valid_environment_passes_with_defaults_and_stripped_values():
    read = EnvReader({"GROUP": " rul-models ", "ITEMS": "a, b"})
    assert read.text("GROUP", NAME_PATTERN) == "rul-models"
    assert read.text("PREFIX", re.compile(r".+/$"), default="raw/") == "raw/"
    assert read.items("ITEMS", re.compile(r"^[a-z]$"), 1, 3) == ("a", "b")
    assert read.choice("MODE", ("canary", "linear"), "canary") == "canary"
    read.check("test-function")  # no problem, no error


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket-1/a/b.json", S3Uri("bucket-1", "a/b.json")),
        ("s3://my.bucket/prefix/", S3Uri("my.bucket", "prefix/")),
        ("s3://bucket-1", S3Uri("bucket-1", "")),
    ],
)
def test_s3_uris_split_into_bucket_and_key(uri, expected):
    assert parse_s3_uri(uri) == expected
    assert is_s3_uri(uri)


@pytest.mark.parametrize("uri", ["https://bucket/a", "s3://Bad_Bucket/a", "s3:///key", "s3://ab/x", None, 3])
def test_anything_else_is_refused_by_name(uri):
    with pytest.raises(S3UriError, match="not an s3://bucket"):
        parse_s3_uri(uri)
    assert not is_s3_uri(uri)


def test_a_key_can_be_required():
    assert str(parse_s3_uri("s3://bucket-1/k", require_key=True)) == "s3://bucket-1/k"
    with pytest.raises(S3UriError, match="s3://bucket/key"):
        parse_s3_uri("s3://bucket-1/", require_key=True)


def test_a_decision_is_one_sorted_json_line_on_the_functions_logger(caplog):
    caplog.set_level(logging.INFO, logger="some_function")
    result = DecisionLog("some_function").decide("ignored", "why", level=logging.WARNING, zeta=1, alpha="a")
    assert result == {"action": "ignored", "reason": "why", "zeta": 1, "alpha": "a"}
    (record,) = [r for r in caplog.records if r.name == "some_function"]
    assert record.levelname == "WARNING"
    assert json.loads(record.getMessage()) == {"function": "some_function", **result}
    assert record.getMessage().index('"action"') < record.getMessage().index('"zeta"')


class Busy(RuntimeError):
    pass


@pytest.mark.parametrize(
    ("failure", "action", "reason"),
    [
        (ConfigError("invalid x configuration: A: required"), "error", "ConfigError: invalid x"),
        (Busy("endpoint is updating"), "retry", "endpoint is updating"),
    ],
)
def test_the_wrapper_logs_a_failure_then_raises_it(caplog, failure, action, reason):
    caplog.set_level(logging.INFO, logger="wrapped")

    def body() -> dict:
        raise failure

    with pytest.raises(type(failure)):
        run_logged(DecisionLog("wrapped"), body, retry=(Busy,))
    (record,) = [r for r in caplog.records if r.name == "wrapped"]
    logged = json.loads(record.getMessage())
    assert (record.levelname, logged["action"]) == ("ERROR", action)
    assert logged["reason"].startswith(reason)


def test_the_wrapper_returns_the_bodys_decision_untouched(caplog):
    caplog.set_level(logging.INFO, logger="wrapped")
    assert run_logged(DecisionLog("wrapped"), lambda: {"action": "done"}) == {"action": "done"}
    assert not caplog.records


def test_clients_retry_in_standard_mode(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    sagemaker, s3 = make_clients("sagemaker", "s3")
    services = (sagemaker.meta.service_model.service_name, s3.meta.service_model.service_name)
    assert services == ("sagemaker", "s3")
    # botocore counts `max_attempts` as retries after the first call.
    expected = {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS + 1}
    assert sagemaker.meta.config.retries == expected


def test_every_function_shares_one_ignored_and_one_config_error():
    from lambdas.backup_registry import config as backup_config
    from lambdas.backup_registry import handler as backup_handler
    from lambdas.deploy_on_approval import config as deploy_config
    from lambdas.deploy_on_approval import registry as deploy_registry
    from lambdas.mirror_model import config as mirror_config
    from lambdas.mirror_model import handler as mirror_handler
    from lambdas.publish_model_metrics import config as publish_config
    from lambdas.publish_model_metrics import handler as publish_handler
    from lambdas.start_pipeline import config as start_config
    from lambdas.start_pipeline import events as start_events

    configs = (backup_config, deploy_config, mirror_config, publish_config, start_config)
    assert {module.ConfigError for module in configs} == {ConfigError}
    handlers = (backup_handler, deploy_registry, mirror_handler, publish_handler, start_events)
    assert {module.Ignored for module in handlers} == {Ignored}
