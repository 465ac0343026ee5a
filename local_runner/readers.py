"""Readers of what an execution's jobs wrote: the evaluation report, the dataset manifest, drift results.

Each reader takes the execution's result (or an output's S3 URI) and the local object store, and returns
the parsed JSON, or None when the execution did not produce it (a failed run has no evaluation). The
report, the MLflow tracking, the demo and the command lines all read job outputs through this module, so
the output names and file names live in one place. The manifest of a sharded preprocessing job is merged
by the container code's own `rul.lineage.read_manifest`, imported through `local_runner.data_version`.
"""

from __future__ import annotations

import json
from typing import Any

from local_runner.object_store import ObjectStore
from local_runner.results import ExecutionResult

EVALUATION_OUTPUT = "evaluation"
EVALUATION_FILE = "evaluation.json"
MANIFEST_OUTPUT = "manifest"
MANIFEST_GLOB = "manifest-*.json"
PLOTS_FOLDER = "plots"


def step_outputs(result: ExecutionResult) -> dict[str, str]:
    """Processing output name -> S3 URI, over every step that ran (or was taken from the cache)."""
    found: dict[str, str] = {}
    for record in result.steps:
        outputs = record.properties.get("ProcessingOutputConfig", {}).get("Outputs", {})
        for name, output in outputs.items():
            found.setdefault(name, output["S3Output"]["S3Uri"].rstrip("/"))
    return found


def evaluation_uri(result: ExecutionResult) -> str | None:
    """The S3 URI of the execution's `evaluation` output, or None when no step produced one."""
    return step_outputs(result).get(EVALUATION_OUTPUT)


def read_evaluation(result: ExecutionResult, store: ObjectStore) -> dict | None:
    """evaluation.json of the execution's `evaluation` output, or None when there is none."""
    uri = evaluation_uri(result)
    if uri is None or not store.path_for(f"{uri}/{EVALUATION_FILE}").is_file():
        return None
    return json.loads(store.read_text(f"{uri}/{EVALUATION_FILE}"))


def read_plots(result: ExecutionResult, store: ObjectStore, names: list[str]) -> dict[str, bytes]:
    """The PNG bytes of each named plot the evaluation wrote (`<evaluation>/plots/<name>.png`)."""
    uri = evaluation_uri(result)
    if uri is None:
        return {}
    paths = {name: store.path_for(f"{uri}/{PLOTS_FOLDER}/{name}.png") for name in names}
    return {name: path.read_bytes() for name, path in paths.items() if path.is_file()}


def read_manifest(store: ObjectStore, uri: str) -> dict | None:
    """The merged dataset manifest under `uri` (one `manifest-<host>.json` per instance), or None."""
    folder = store.path_for(uri.rstrip("/"))
    if not folder.is_dir() or not any(folder.glob(MANIFEST_GLOB)):
        return None
    from local_runner.data_version import container_lineage

    return container_lineage().read_manifest(folder)


def read_execution_manifest(result: ExecutionResult, store: ObjectStore) -> dict | None:
    """The dataset manifest of the execution's `manifest` output, or None when it has none."""
    uri = step_outputs(result).get(MANIFEST_OUTPUT)
    return None if uri is None else read_manifest(store, uri)


def read_drift(result: ExecutionResult, store: ObjectStore) -> dict[str, Any]:
    """`<output>/<file>` -> parsed JSON of every JSON file under an output whose name contains "drift"."""
    found: dict[str, Any] = {}
    for name, uri in step_outputs(result).items():
        if "drift" in name.lower():
            for relative, path in store.objects(uri):
                if relative.endswith(".json"):
                    found[f"{name}/{relative}"] = json.loads(path.read_text())
    return found
