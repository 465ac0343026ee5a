"""The secured definition (KMS keys, VPC, network isolation, managed spot) and the deterministic source
bundle and offline session it is rendered with."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
from definition_helpers import (
    KMS_KEY,
    PROCESSING_STEPS,
    SECURE,
    all_steps,
    default_render,
    guarded_render,
)

from pipeline_steps import names
from pipeline_steps.code import (
    CONTAINERS_DIR,
    SOURCE_BUNDLE_NAME,
    build_source_bundle,
    code_uri_for,
    library_uri,
    script_uri,
    source_dir_uri,
)
from pipeline_steps.config import local_config
from pipeline_steps.session import disable_sdk_telemetry, offline_session


@pytest.fixture(scope="module")
def definition() -> dict:
    return json.loads(default_render()[0])


@pytest.fixture(scope="module")
def secure_definition() -> dict:
    text, attempts = guarded_render(local_config(**SECURE))
    assert attempts == []
    return json.loads(text)


# --- security settings --------------------------------------------------------------------------------


def test_default_config_isolates_without_vpc_or_keys(definition):
    steps = all_steps(definition)
    for name in PROCESSING_STEPS:
        network = steps[name]["Arguments"]["NetworkConfig"]
        assert network == {"EnableInterContainerTrafficEncryption": True, "EnableNetworkIsolation": True}
    assert "KmsKeyId" not in json.dumps(definition)


def test_secure_config_sets_vpc_isolation_and_kms_everywhere(secure_definition):
    steps = all_steps(secure_definition)
    vpc = {"SecurityGroupIds": ["sg-0ccc"], "Subnets": ["subnet-0aaa", "subnet-0bbb"]}
    for name in PROCESSING_STEPS:
        args = steps[name]["Arguments"]
        assert args["NetworkConfig"]["VpcConfig"] == vpc, name
        assert args["NetworkConfig"]["EnableNetworkIsolation"] is True, name
        assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KMS_KEY, name
        assert args["ProcessingOutputConfig"]["KmsKeyId"] == KMS_KEY, name
    training = steps[names.TUNE_STEP]["Arguments"]["TrainingJobDefinition"]
    assert training["VpcConfig"] == vpc
    assert training["EnableNetworkIsolation"] is True
    assert training["HyperParameterTuningResourceConfig"]["VolumeKmsKeyId"] == KMS_KEY
    assert training["OutputDataConfig"]["KmsKeyId"] == KMS_KEY
    refit = steps[names.REFIT_STEP]["Arguments"]
    assert refit["VpcConfig"] == vpc
    assert refit["EnableNetworkIsolation"] is True
    assert refit["EnableInterContainerTrafficEncryption"] is True
    assert refit["ResourceConfig"]["VolumeKmsKeyId"] == KMS_KEY
    assert refit["OutputDataConfig"]["KmsKeyId"] == KMS_KEY


def test_network_isolation_can_be_turned_off():
    text, attempts = guarded_render(local_config(network_isolation=False))
    assert attempts == []
    steps = all_steps(json.loads(text))
    training = steps[names.TUNE_STEP]["Arguments"]["TrainingJobDefinition"]
    assert "EnableNetworkIsolation" not in training  # the SDK omits a false flag
    assert steps[names.PREPROCESS_STEP]["Arguments"]["NetworkConfig"]["EnableNetworkIsolation"] is False
    # Without isolation the job downloads source_dir itself: no "code" channel.
    assert [c["ChannelName"] for c in training["InputDataConfig"]] == ["train", "validation"]
    submit = json.loads(training["StaticHyperParameters"]["sagemaker_submit_directory"])
    assert submit == "s3://local-artifacts/code/000000000000/sourcedir.tar.gz"


def spot_jobs(definition: dict) -> dict[str, dict]:
    """The training job request of the TuneModel trials and of RefitModel."""
    steps = all_steps(definition)
    return {
        names.TUNE_STEP: steps[names.TUNE_STEP]["Arguments"]["TrainingJobDefinition"],
        names.REFIT_STEP: steps[names.REFIT_STEP]["Arguments"],
    }


def test_spot_training_is_off_by_default(definition):
    for name, job in spot_jobs(definition).items():
        assert "EnableManagedSpotTraining" not in job and "CheckpointConfig" not in job, name
        assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}, name


def test_spot_training_renders_wait_and_a_fixed_checkpoint_uri_per_step():
    text, attempts = guarded_render(local_config(spot_training=True, spot_max_wait_minutes=150))
    assert attempts == []
    for name, job in spot_jobs(json.loads(text)).items():
        assert job["EnableManagedSpotTraining"] is True, name
        assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 9000}
        # No execution id: CheckpointConfig is in a training step's cache key, and a rerun must find it.
        assert job["CheckpointConfig"] == {
            "S3Uri": f"s3://local-artifacts/turbofan-rul/checkpoints/{name}/",
            "LocalPath": "/opt/ml/checkpoints",
        }


# --- code bundle --------------------------------------------------------------------------------------


def test_source_bundle_is_byte_identical_across_builds(tmp_path):
    first = build_source_bundle(CONTAINERS_DIR, tmp_path / "a")
    second = build_source_bundle(CONTAINERS_DIR, tmp_path / "b")
    assert first.tarball.read_bytes() == second.tarball.read_bytes()
    assert first.version == second.version == hashlib.sha256(first.tarball.read_bytes()).hexdigest()[:12]
    assert first.tarball.name == SOURCE_BUNDLE_NAME


def test_source_bundle_contents_and_metadata(tmp_path):
    bundle = build_source_bundle(CONTAINERS_DIR, tmp_path)
    assert {"preprocess.py", "train.py", "evaluate.py", "rul/__init__.py", "rul/metrics.py"} <= set(
        bundle.files
    )
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in bundle.files)
    assert list(bundle.files) == sorted(bundle.files)
    raw = bundle.tarball.read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip header mtime
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as archive:
        members = archive.getmembers()
    assert tuple(member.name for member in members) == bundle.files
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert {m.mode for m in members} <= {0o644, 0o755}


def test_source_bundle_leaves_out_caches_and_compiled_files(tmp_path):
    source = tmp_path / "src"
    (source / "rul" / "__pycache__").mkdir(parents=True)
    (source / "train.py").write_text("print('train')\n")
    (source / "rul" / "__init__.py").write_text("")
    (source / "rul" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\0")
    (source / "rul" / "stale.pyc").write_bytes(b"\0")
    (source / ".pytest_cache").mkdir()
    (source / ".pytest_cache" / "README.md").write_text("cache")
    assert build_source_bundle(source, tmp_path / "out").files == ("rul/__init__.py", "train.py")


def test_source_bundle_version_follows_content(tmp_path):
    source = tmp_path / "src"
    (source / "rul").mkdir(parents=True)
    (source / "train.py").write_text("print('a')\n")
    (source / "rul" / "__init__.py").write_text("")
    first = build_source_bundle(source, tmp_path / "one")
    (source / "train.py").write_text("print('b')\n")
    assert build_source_bundle(source, tmp_path / "two").version != first.version


def test_code_uri_helpers():
    code = code_uri_for("artifacts", "0123456789ab")
    assert code == "s3://artifacts/code/0123456789ab/"
    assert source_dir_uri(code) == "s3://artifacts/code/0123456789ab/sourcedir.tar.gz"
    assert library_uri(code) == "s3://artifacts/code/0123456789ab/src/"
    assert script_uri(code, "evaluate.py") == "s3://artifacts/code/0123456789ab/src/evaluate.py"
    with pytest.raises(ValueError, match="code_uri"):
        source_dir_uri("artifacts/code/")


def test_offline_session_uses_the_config_and_no_sdk_defaults():
    config = local_config(work_bucket="bucket-x", region="eu-west-1")
    session = offline_session(config)
    # Not session.default_bucket(): that checks (and creates) the bucket in S3 even when it was given.
    assert session._default_bucket_name_override == "bucket-x"
    assert session.boto_region_name == "eu-west-1"
    assert session.sagemaker_config == {}


def test_disable_sdk_telemetry_replaces_the_sender(monkeypatch):
    from sagemaker.telemetry import telemetry_logging

    monkeypatch.setattr(telemetry_logging, "_send_telemetry_request", lambda *a, **k: 1 / 0)
    disable_sdk_telemetry()
    assert telemetry_logging._send_telemetry_request(0, [], None) is None
