"""The data version of a local run and of the newest model in the local registry, as run parameters.

On AWS the start function passes `DataVersion` (from the S3 listing of the input) and
`RegisteredDataVersion` (from the newest registered package) so that SageMaker's step cache, keyed by the
steps' arguments, is keyed by the data. Locally the input's bytes are at hand, so the version is the
dataset manifest's own content hash (`rul.lineage.dataset_version` over every file under the input URI in
the object store, named relative to it): a run whose prefix holds only the files PreprocessData reads gets
the version its manifest records. `with_data_versions` adds both parameters to a run's parameters unless
the user set them (`--param DataVersion=...` wins).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from local_runner.container_code import use_container_code
from local_runner.errors import RunnerError
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from pipeline_steps.config import PipelineConfig
from pipeline_steps.names import (
    DATA_VERSION,
    DATA_VERSION_METADATA_KEY,
    INPUT_DATA_URI,
    REGISTERED_DATA_VERSION,
)


class DataVersionError(RunnerError, ValueError):
    """The input names no file, so it has no data version; the message names the URI."""


def container_lineage() -> Any:
    """The container code's `rul.lineage` module (manifests and data versions are computed there)."""
    # The runner runs the container scripts but does not import them at module level; the hash is theirs.
    use_container_code()
    from rul import lineage

    return lineage


def local_data_version(store: ObjectStore, input_uri: str) -> str:
    """The content hash of every object under `input_uri`, as the dataset manifest computes it."""
    lineage = container_lineage()
    files = [{"name": name, "sha256": lineage.file_sha256(path)} for name, path in store.objects(input_uri)]
    if not files:
        raise DataVersionError(f"no object under {input_uri}: nothing to version or to train on")
    return lineage.dataset_version(files)


def registered_data_version(registry: LocalRegistry, group: str) -> str:
    """`DataVersion` of the newest package of `group`; "" when there is none or it carries none."""
    packages = registry.list(group)
    if not packages:
        return ""
    return (packages[0].customer_metadata or {}).get(DATA_VERSION_METADATA_KEY, "")


def with_data_versions(
    parameters: Mapping[str, object], store: ObjectStore, registry: LocalRegistry, config: PipelineConfig
) -> dict[str, object]:
    """`parameters` plus `DataVersion` of the run's input and `RegisteredDataVersion`, unless given."""
    computed: dict[str, object] = {}
    if DATA_VERSION not in parameters:
        computed[DATA_VERSION] = local_data_version(
            store, str(parameters.get(INPUT_DATA_URI, config.data_uri))
        )
    if REGISTERED_DATA_VERSION not in parameters:
        computed[REGISTERED_DATA_VERSION] = registered_data_version(registry, config.model_package_group_name)
    return {**computed, **parameters}
