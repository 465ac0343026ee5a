"""What an approved version's mirror holds, and writing it: the artifacts, then an index.

From a model package description (botocore's `DescribeModelPackageOutput`, which the local registry also
answers in) `planned_artifacts` names the files to copy: the model archive, the evaluation report its
ModelMetrics point to, and every file of the data manifest prefix named by its customer metadata. They land
under `<prefix><group>/v<version>/` as `model.tar.gz`, `evaluation.json` and `manifest/<file>`, followed by
`mirror.json`: an index naming each file's key, size, sha256 and source, written last, so a consumer that
finds the index finds every file it lists. The index holds no timestamp, so mirroring the same version again
writes nothing (`put_verified` skips identical objects). A `Source` reads the artifacts: S3 on AWS, the
local object store in the local runner.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from lambdas.common.events import APPROVED

from .store import Destination, MirrorError, put_verified

MODEL_FILE = "model.tar.gz"
EVALUATION_FILE = "evaluation.json"
MANIFEST_FOLDER = "manifest/"
INDEX_FILE = "mirror.json"
DATA_MANIFEST_METADATA_KEY = "DataManifestUri"  # pipeline_steps.names.DATA_MANIFEST_METADATA_KEY
CONTENT_TYPES = {".gz": "application/gzip", ".json": "application/json"}


class Source(Protocol):
    """Where the registered artifacts are read from."""

    def read(self, uri: str) -> bytes:
        """The bytes of the artifact at `uri`; `MirrorError` when it cannot be read."""

    def list(self, prefix_uri: str) -> list[str]:
        """The URIs of the artifacts under the folder `prefix_uri`."""


@dataclass(frozen=True)
class Artifact:
    """One file of the mirror: its name under the version folder and the URI it is copied from."""

    name: str
    uri: str


@dataclass(frozen=True)
class MirrorResult:
    """What `mirror_package` did: {key: "uploaded" | "skipped"}, the folder and the index's key."""

    group: str
    version: int
    folder: str
    index_key: str
    objects: dict[str, str] = field(default_factory=dict)

    @property
    def uploaded(self) -> int:
        """How many objects this run uploaded (the others were skipped as present)."""
        return sum(1 for status in self.objects.values() if status == "uploaded")


def version_folder(prefix: str, group: str, version: int) -> str:
    """The store folder of one version: `<prefix><group>/v<version>/`."""
    return f"{prefix}{group}/v{version}/"


def planned_artifacts(description: dict[str, Any], source: Source) -> list[Artifact]:
    """The model archive, the evaluation report and the data manifest files of a version."""
    containers = (description.get("InferenceSpecification") or {}).get("Containers") or []
    model_url = containers[0].get("ModelDataUrl") if containers else None
    if not model_url:
        raise MirrorError(f"model package {description.get('ModelPackageArn')} has no ModelDataUrl to mirror")
    artifacts = [Artifact(MODEL_FILE, model_url)]
    quality = ((description.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
    if quality.get("S3Uri"):
        artifacts.append(Artifact(EVALUATION_FILE, quality["S3Uri"]))
    manifest = (description.get("CustomerMetadataProperties") or {}).get(DATA_MANIFEST_METADATA_KEY)
    if manifest:
        for uri in source.list(manifest):
            artifacts.append(Artifact(MANIFEST_FOLDER + uri.rstrip("/").rsplit("/", 1)[-1], uri))
    return artifacts


def _content_type(name: str) -> str:
    return next(
        (kind for suffix, kind in CONTENT_TYPES.items() if name.endswith(suffix)), "binary/octet-stream"
    )


def _identity(description: dict[str, Any]) -> tuple[str, int, str]:
    status = description.get("ModelApprovalStatus")
    if status != APPROVED:
        raise MirrorError(
            f"model package {description.get('ModelPackageArn')} is {status}, not Approved: "
            "only approved versions are mirrored"
        )
    return (
        description["ModelPackageGroupName"],
        int(description["ModelPackageVersion"]),
        description["ModelPackageArn"],
    )


def mirror_package(description: dict[str, Any], source: Source, destination: Destination) -> MirrorResult:
    """Copy an approved version's artifacts to `destination`, then its index; idempotent."""
    group, version, arn = _identity(description)
    folder = version_folder(destination.prefix, group, version)
    metadata = {"model-package-group": group, "model-version": str(version), "model-package-arn": arn}
    result = MirrorResult(group, version, folder, folder + INDEX_FILE)
    files = []
    for artifact in planned_artifacts(description, source):
        body = source.read(artifact.uri)
        key = folder + artifact.name
        result.objects[key] = put_verified(destination, key, body, metadata, _content_type(artifact.name))
        sha256 = hashlib.sha256(body).hexdigest()
        files.append(
            {"name": artifact.name, "key": key, "size": len(body), "sha256": sha256, "source": artifact.uri}
        )
    index = {"model_package_arn": arn, "group": group, "version": version, "files": files}
    body = json.dumps(index, indent=2, sort_keys=True).encode()
    result.objects[result.index_key] = put_verified(
        destination, result.index_key, body, metadata, "application/json"
    )
    return result
