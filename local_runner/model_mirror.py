"""The local side of the model mirror: `registry approve` copies the approved version to an S3-compatible
store, and `registry mirror VERSION` does it again (after a failure, or for a version approved earlier).

The destination is a `settings.mirror.LocalMirrorSettings`: `<work-dir>/mirror.json` when that file
exists, else the `mirror` section of the project settings (the CDK context of cdk.json, as `app.py` reads
it). With the mirror off (the default) nothing happens. The store's keys come from the environment
variables the settings name or from the JSON file `credentials_file` (readable by its owner only); they
are never printed. The copy itself is the AWS function's (`lambdas.mirror_model.mirror`), reading from
the local object store. After an approval the mirror runs once the status has committed: a failure is
reported with the command that retries it and leaves the approval as it is. Results go to standard output;
warnings and errors go to standard error, and a failed `registry mirror` exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

from lambdas.mirror_model.mirror import MirrorResult, mirror_package
from lambdas.mirror_model.store import Destination, MirrorError, StoreSettings, open_destination
from local_runner.errors import RunnerError
from local_runner.object_store import ObjectStore, ObjectStoreError
from local_runner.registry import LocalRegistry, ModelPackage, RegistryError, describe_shape
from local_runner.work_layout import REGISTRY_FILE, STORE_FOLDER
from settings.mirror import LocalMirrorSettings

MIRROR_CONFIG_FILE = "mirror.json"
Echo = Callable[[str], object]


def to_stderr(line: str) -> None:
    """Print an error or warning line on standard error (standard output holds only results)."""
    print(line, file=sys.stderr)


class MirrorSetupError(RunnerError, ValueError):
    """The mirror's settings or keys are missing or invalid; the message names the file or variable."""


class LocalSource:
    """Reads registered artifacts from the local object store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def read(self, uri: str) -> bytes:
        """The bytes of a registered artifact in the local store; `MirrorError` when missing or unreadable."""
        try:
            return self.store.path_for(uri).read_bytes()
        except (ObjectStoreError, OSError) as error:
            raise MirrorError(f"cannot read the registered artifact {uri}: {error}") from None

    def list(self, prefix_uri: str) -> list[str]:
        """The URIs of the objects stored under `prefix_uri`."""
        prefix = prefix_uri.rstrip("/")
        return [f"{prefix}/{name}" for name, _ in self.store.objects(prefix)]


def load_mirror_settings(work_dir: Path) -> LocalMirrorSettings:
    """`<work-dir>/mirror.json`, else the project settings' `mirror` section."""
    from pydantic import ValidationError

    path = Path(work_dir) / MIRROR_CONFIG_FILE
    if not path.is_file():
        from pipeline_steps.aws_target import CDK_JSON, context_values
        from settings import SettingsError, load_settings

        try:
            project = load_settings(*context_values(CDK_JSON)).mirror
        except SettingsError as error:
            raise MirrorSetupError(f"the project settings are invalid: {error}") from None
        # The project settings name the destination; the keys come from the default variables.
        return LocalMirrorSettings.model_validate(project.model_dump())
    try:
        return LocalMirrorSettings.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError, ValidationError) as error:
        raise MirrorSetupError(f"{path} is not valid mirror settings: {error}") from None


def _keys_from_file(path: Path) -> tuple[str, str]:
    try:
        private = not path.stat().st_mode & 0o077
        values = json.loads(path.read_text()) if private else None
    except (OSError, ValueError) as error:
        raise MirrorSetupError(f"cannot read credentials file {path}: {type(error).__name__}") from None
    if not private:
        raise MirrorSetupError(f"credentials file {path} is readable by others: chmod 600 {path}")
    fields = ("access_key_id", "secret_access_key")
    if not isinstance(values, dict) or not all(isinstance(values.get(name), str) for name in fields):
        raise MirrorSetupError(
            f"credentials file {path} must hold {{{', '.join(map(repr, fields))}}} strings"
        )
    return values["access_key_id"], values["secret_access_key"]


def store_keys(settings: LocalMirrorSettings, environ: Mapping[str, str]) -> tuple[str, str]:
    """(access key id, secret access key) from `credentials_file` or the named environment variables."""
    if settings.credentials_file:
        return _keys_from_file(Path(settings.credentials_file).expanduser())
    names = (settings.access_key_id_env, settings.secret_access_key_env)
    missing = [name for name in names if not environ.get(name)]
    if missing:
        raise MirrorSetupError(
            f"the store's keys are missing: set {' and '.join(missing)} (or mirror.credentials_file)"
        )
    return environ[names[0]], environ[names[1]]


def destination(settings: LocalMirrorSettings, environ: Mapping[str, str]) -> Destination:
    """The store to mirror to; `MirrorSetupError` when the mirror is off."""
    if not settings.enabled or settings.endpoint_url is None or settings.bucket is None:
        raise MirrorSetupError(
            f"the mirror is off: set enabled, endpoint_url and bucket in {MIRROR_CONFIG_FILE} or the settings"
        )
    # checked above: an enabled mirror has its endpoint_url and bucket
    return open_destination(cast(StoreSettings, settings), *store_keys(settings, environ))


def mirror_version(
    work_dir: Path, group: str, version: int, environ: Mapping[str, str] | None = None
) -> MirrorResult:
    """Mirror an approved version of the local registry in `work_dir`."""
    work_dir = Path(work_dir)
    target = destination(load_mirror_settings(work_dir), os.environ if environ is None else environ)
    package = LocalRegistry(work_dir / REGISTRY_FILE).get(group, version)
    store = ObjectStore(work_dir / STORE_FOLDER)
    return mirror_package(describe_shape(package), LocalSource(store), target)


def result_line(result: MirrorResult, endpoint_url: str = "") -> str:
    """One line saying what a mirror run uploaded and what it skipped."""
    return (
        f"mirrored {result.group} version {result.version} to {result.folder} {endpoint_url}".rstrip()
        + f": {result.uploaded} of {len(result.objects)} objects uploaded, the rest already identical"
    )


def mirror_after_approval(
    registry: LocalRegistry, package: ModelPackage, echo: Echo = print, warn: Echo = to_stderr
) -> None:
    """Run after an approval committed: mirror it when the mirror is on; a failure is reported to `warn`,
    never raised, so the approval stands and `registry mirror VERSION` retries."""
    work_dir = registry.path.parent
    try:
        if not load_mirror_settings(work_dir).enabled:
            return
        echo(result_line(mirror_version(work_dir, package.group, package.version)))
    except Exception as error:  # the approval has committed: any mirror fault is reported, not raised
        warn(
            f"warning: version {package.version} is approved, but the mirror failed: "
            f"{type(error).__name__}: {error}; retry with: python -m local_runner registry mirror "
            f"{package.version} --work-dir {work_dir} --group {package.group}"
        )


def add_mirror_parser(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """The `registry mirror VERSION` sub-verb."""
    mirror = actions.add_parser(
        "mirror", parents=[common], help="copy an approved version to the S3-compatible store (retryable)"
    )
    mirror.add_argument("version", type=int)


def run_mirror_command(args: argparse.Namespace, echo: Echo = print, fail: Echo = to_stderr) -> int:
    """`registry mirror VERSION`: 0 and the result line on `echo` when mirrored, else 1 and a one-line error
    on `fail`."""
    try:
        echo(result_line(mirror_version(args.work_dir, args.group, args.version)))
        return 0
    except (MirrorError, MirrorSetupError, RegistryError) as error:
        fail(f"error: mirror {args.group} version {args.version} failed: {error}")
    return 1
