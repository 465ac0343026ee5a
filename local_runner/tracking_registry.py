"""MLflow's model registry as a mirror of the local model registry: versions, approvals and the champion.

A model package group is a registered model of the same name; each registered package is a model version
tagged with the package ARN, its approval status and reason, the test metrics and the data version. The
version's source is the package's `pyfunc` logged model (`tracking_model`), so
`mlflow.pyfunc.load_model("models:/<group>/<version>")` predicts; when that model cannot be logged the
version points at the SageMaker artifact instead, and says why on the runner's output. Approvals change
after registration (`registry approve`/`reject`): `mirror_status` copies the status and reason onto the
version and points the alias `champion` (aliases are MLflow's replacement of stages) at the version of
the newest approved package, the rule `local_runner.champion` serves by, removing it when none is left.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_runner.object_store import ObjectStore
from local_runner.registry import APPROVED
from local_runner.tracking_model import log_pyfunc_model
from local_runner.tracking_store import existing_store

if TYPE_CHECKING:
    from local_runner.registry import ModelPackage

ARN_TAG = "sagemaker.model_package_arn"
STATUS_TAG = "sagemaker.approval_status"
REASON_TAG = "sagemaker.approval_description"
MODEL_DATA_TAG = "sagemaker.model_data_url"
CHAMPION_ALIAS = "champion"


def _description(package: ModelPackage) -> str:
    reason = f": {package.approval_description}" if package.approval_description else ""
    return f"SageMaker model package {package.arn} ({package.approval_status}{reason})"


def version_tags(package: ModelPackage, store: ObjectStore, manifest_uris: Iterable[str]) -> dict[str, str]:
    """The mirrored version's tags: package, status, test metrics and the first readable manifest's data."""
    from local_runner.readers import read_manifest

    tags = {
        ARN_TAG: package.arn,
        STATUS_TAG: package.approval_status,
        MODEL_DATA_TAG: package.model_data_url,
        "pipeline.execution_id": package.execution_id or "",
    }
    quality = (package.metrics or {}).get("ModelQuality", {})
    statistics = (quality.get("Statistics", {}) or {}).get("S3Uri")
    if statistics and store.path_for(statistics).is_file():
        evaluation = json.loads(store.read_text(statistics))
        for name, entry in evaluation["regression_metrics"].items():
            tags[f"metric.test_{name}"] = f"{entry['value']:.4f}"
    for uri in dict.fromkeys(u for u in manifest_uris if u):
        manifest = read_manifest(store, uri)
        if manifest:
            tags.update({"data.manifest_uri": uri, "data.version": manifest["version"]})
            break
    return tags


def _logged_model(
    client: Any, experiment_id: str, run_id: str, package: ModelPackage, store: ObjectStore, echo
) -> tuple[str, str | None]:
    """(source, logged model id) of the version: the pyfunc model, else the SageMaker artifact."""
    archive = store.path_for(package.model_data_url)
    try:
        if not archive.is_file():
            raise FileNotFoundError(f"no model archive at {package.model_data_url}")
        logged = log_pyfunc_model(client, experiment_id, run_id, archive, {ARN_TAG: package.arn})
    except Exception as error:
        echo(
            f"mlflow: the pyfunc model of {package.arn} could not be logged ({type(error).__name__}: "
            f"{error}); its version points at the SageMaker artifact and cannot be loaded from MLflow"
        )
        return package.model_data_url, None
    return logged.artifact_location, logged.model_id


def register_version(
    client: Any,
    experiment_id: str,
    run_id: str,
    package: ModelPackage,
    store: ObjectStore,
    manifest_uris: Iterable[str],
    echo: Callable[[str], None] = print,
) -> Any:
    """Mirror a newly registered package as a model version (with its pyfunc model when `run_id` is set)."""
    tags = version_tags(package, store, manifest_uris)
    if not client.search_registered_models(f"name = '{package.group}'"):
        client.create_registered_model(
            package.group, description="Mirror of the SageMaker model package group"
        )
    source, model_id = package.model_data_url, None
    if run_id:
        source, model_id = _logged_model(client, experiment_id, run_id, package, store, echo)
    version = client.create_model_version(
        package.group,
        source,
        run_id=run_id or None,
        tags=tags,
        description=_description(package),
        model_id=model_id,
    )
    mirror_status(client, package)
    return version


def _package_number(arn: str | None) -> int:
    tail = (arn or "").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def mirror_status(client: Any, package: ModelPackage) -> str:
    """Copy `package`'s approval onto its mirrored version and move the `champion` alias; says what it did."""
    group = package.group
    versions = list(client.search_model_versions(f"name = '{group}'"))
    mine = [version for version in versions if version.tags.get(ARN_TAG) == package.arn]
    if not mine:
        return f"mlflow: no version of {group} mirrors package version {package.version}; nothing to update"
    for version in mine:
        client.set_model_version_tag(group, version.version, STATUS_TAG, package.approval_status)
        if package.approval_description:
            client.set_model_version_tag(group, version.version, REASON_TAG, package.approval_description)
        elif REASON_TAG in version.tags:
            client.delete_model_version_tag(group, version.version, REASON_TAG)
        client.update_model_version(group, version.version, description=_description(package))
    changed = {str(version.version) for version in mine}
    approved = [
        (_package_number(version.tags.get(ARN_TAG)), int(version.version))
        for version in versions
        if (package.approval_status if str(version.version) in changed else version.tags.get(STATUS_TAG))
        == APPROVED
    ]
    champion = str(max(approved)[1]) if approved else None
    aliases = {
        alias: str(number) for alias, number in (client.get_registered_model(group).aliases or {}).items()
    }
    if champion is not None and aliases.get(CHAMPION_ALIAS) != champion:
        client.set_registered_model_alias(group, CHAMPION_ALIAS, champion)
    elif champion is None and CHAMPION_ALIAS in aliases:
        client.delete_registered_model_alias(group, CHAMPION_ALIAS)
    where = f"version {champion}" if champion else "no version"
    numbers = ", ".join(sorted(changed, key=int))
    return (
        f"mlflow: {group} version {numbers} is {package.approval_status}; alias {CHAMPION_ALIAS} -> {where}"
    )


def mirror_approval(
    work_dir_or_tracking_uri: Path | str, package: ModelPackage, echo: Callable[[str], object] = print
) -> str | None:
    """Mirror `package`'s changed approval status into MLflow's registry (`mirror_status`), for the approval
    callback of `registry approve`/`reject`. A work folder means the store its runs track into; one never
    tracked is left alone (None). A failure is echoed and returned, never raised: the approval stands."""
    uri = existing_store(work_dir_or_tracking_uri, os.environ)
    if uri is None:
        return None
    try:
        from mlflow.tracking import MlflowClient

        message = mirror_status(MlflowClient(tracking_uri=uri), package)
    except Exception as error:  # the local registry is the source of truth; MLflow only mirrors it
        message = f"mlflow: mirroring {package.approval_status} of {package.arn} failed: {error!r}"
    echo(message)
    return message
