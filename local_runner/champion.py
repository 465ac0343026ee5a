"""The champion pointer: the approved model in service, kept at a fixed S3 prefix.

The pipeline's EvaluateModel step reads this prefix to score the newest approved model on the same test
units as the challenger. It holds `model.tar.gz` and `champion.json` (version, package ARN), or only a
placeholder before any model was approved (a processing input may not be an empty prefix). Under
`baselines/` it also holds the statistics.json and constraints.json registered with that version
(`DriftCheckBaselines.ModelDataQuality`), the fixed input of the monitoring pipeline's drift step. On AWS the
deploy-on-approval function maintains it; locally `registry approve` does, through `publish_champion`.
"""

from __future__ import annotations

import json

from local_runner.object_store import ObjectStore
from local_runner.registry import ModelPackage
from pipeline_steps.monitoring_config import champion_baselines_uri
from pipeline_steps.monitoring_names import CONSTRAINTS_FILE, STATISTICS_FILE

PLACEHOLDER = "NO_CHAMPION_YET.txt"


def ensure_champion_prefix(store: ObjectStore, champion_uri: str) -> None:
    """Keep the prefix non-empty: write the placeholder when no champion was published."""
    prefix = champion_uri.rstrip("/")
    if not store.objects(prefix + "/model.tar.gz"):
        store.put_text(f"{prefix}/{PLACEHOLDER}", "No model has been approved yet.\n")


def publish_champion(store: ObjectStore, champion_uri: str, package: ModelPackage) -> None:
    """Copy an approved package's model to the champion prefix, replacing the previous one."""
    prefix = champion_uri.rstrip("/")
    store.upload(store.path_for(package.model_data_url), f"{prefix}/model.tar.gz")
    store.put_text(
        f"{prefix}/champion.json",
        json.dumps({"version": package.version, "model_package_arn": package.arn, "group": package.group}),
    )
    store.delete(f"{prefix}/{PLACEHOLDER}")
    publish_baselines(store, champion_uri, package)


def package_baselines(package: ModelPackage) -> dict[str, str]:
    """{file name: S3 URI} of the version's data-quality baselines; empty when none was registered."""
    quality = (package.drift_check_baselines or {}).get("ModelDataQuality") or {}
    found = {
        STATISTICS_FILE: (quality.get("Statistics") or {}).get("S3Uri"),
        CONSTRAINTS_FILE: (quality.get("Constraints") or {}).get("S3Uri"),
    }
    return {name: uri for name, uri in found.items() if uri}


def publish_baselines(store: ObjectStore, champion_uri: str, package: ModelPackage) -> None:
    """Replace `<champion>/baselines/` with the version's statistics.json and constraints.json."""
    target = champion_baselines_uri(champion_uri)
    store.delete(target)
    for name, uri in package_baselines(package).items():
        store.upload(store.path_for(uri), target + name)


def current_champion(store: ObjectStore, champion_uri: str) -> dict | None:
    prefix = champion_uri.rstrip("/")
    if not store.objects(prefix + "/champion.json"):
        return None
    return json.loads(store.read_text(prefix + "/champion.json"))


def follow_registry(store: ObjectStore, champion_uri: str, registry, group: str):
    """An `on_change` callback for the registry CLI: the champion becomes the newest approved version."""

    def on_change(_package: ModelPackage) -> None:
        latest = registry.latest_approved(group)
        prefix = champion_uri.rstrip("/")
        if latest is None:
            store.delete(f"{prefix}/model.tar.gz")
            store.delete(f"{prefix}/champion.json")
            store.delete(champion_baselines_uri(champion_uri))
            ensure_champion_prefix(store, champion_uri)
        else:
            publish_champion(store, champion_uri, latest)

    return on_change
