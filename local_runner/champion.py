"""The champion pointer: the approved model in service, kept at a fixed S3 prefix, moved atomically.

The pipeline's EvaluateModel step reads this prefix to score the newest approved model on the same test
units as the challenger. It holds `model.tar.gz` and `champion.json` (version, package ARN), or only a
placeholder before any model was approved (a processing input may not be an empty prefix). Under
`baselines/` it also holds the statistics.json and constraints.json registered with that version
(`DriftCheckBaselines.ModelDataQuality`), the fixed input of the monitoring pipeline's drift step. On AWS the
deploy-on-approval function maintains it; locally `registry approve/reject` does, through `change_status`.

A new champion is assembled whole in a staging folder (`<bucket>/.tmp-staging/`, invisible to reads), its
model copy checked against the verified archive's sha256, and swapped in with one `renameat2` exchange (two
renames where the file system cannot exchange). `change_status` does the swap inside the registry's write
transaction and swaps back when the transaction fails, so status and champion change together. A command
killed half way leaves at most a stale staging folder and, between swap and commit, a champion ahead of the
registry: `recover` (run first by every status change) removes the one and republishes the registry's
newest approved version over the other. Before anything changes, `verify_archive` checks a model archive:
it exists, is a readable tar.gz, and its model loads and predicts (`serve.py check`, in a fresh process).
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import os
import shutil
import signal
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from local_runner.endpoint import check_model
from local_runner.errors import RunnerError
from local_runner.model_mirror import mirror_after_approval
from local_runner.object_store import IN_FLIGHT, ObjectStore, ObjectStoreError
from local_runner.registry import APPROVED, LocalRegistry, ModelPackage
from pipeline_steps.monitoring_names import BASELINES_FOLDER, CONSTRAINTS_FILE, STATISTICS_FILE

PLACEHOLDER = "NO_CHAMPION_YET.txt"
MODEL_FILE = "model.tar.gz"
CHAMPION_FILE = "champion.json"
STAGING_FOLDER = f"{IN_FLIGHT}staging"
# Fault injection for the tests: the command kills itself with SIGKILL at the named point.
CRASH_HOOK = "RUL_REGISTRY_CRASH_AT"
CRASH_POINTS = ("staged", "swapped", "committed")

Check = Callable[[Path], tuple[bool, str]]


class ChampionError(RunnerError, RuntimeError):
    """A model archive failed verification, or the champion could not be published; names the version."""


@dataclass(frozen=True)
class ChampionTarget:
    """Where the champion lives (`uri` in `store`) and how a model folder is health-checked."""

    store: ObjectStore
    uri: str
    check: Check = field(default=check_model)

    @property
    def folder(self) -> Path:
        """The local folder the champion URI maps to."""
        return self.store.path_for(self.uri.rstrip("/"))

    @property
    def staging(self) -> Path:
        """The hidden folder, beside the champion's, in which a new champion is assembled."""
        return self.folder.parent / STAGING_FOLDER


@dataclass(frozen=True)
class VerifiedArchive:
    """A model archive that passed `verify_archive`: its file, the sha256 of the checked bytes."""

    version: int
    path: Path
    sha256: str
    said: str


def crash_point(name: str) -> None:
    """Test hook: kill this process at `name` when `RUL_REGISTRY_CRASH_AT` equals it."""
    if os.environ.get(CRASH_HOOK) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- verification ------------------------------------------------------------------------------------------


def _archive_path(store: ObjectStore, package: ModelPackage) -> Path:
    try:
        path = store.path_for(package.model_data_url)
    except ObjectStoreError as error:
        raise ChampionError(f"version {package.version}: {error}") from None
    if not path.is_file():
        raise ChampionError(f"version {package.version}: model archive {path} does not exist")
    return path


def verify_archive(target: ChampionTarget, package: ModelPackage) -> VerifiedArchive:
    """Check that the version's model archive exists, unpacks as a tar.gz, loads and predicts."""
    path = _archive_path(target.store, package)
    payload = path.read_bytes()
    with tempfile.TemporaryDirectory(prefix="rul-verify-") as scratch:
        try:
            with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as archive:
                archive.extractall(scratch, filter="data")
        except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
            raise ChampionError(
                f"version {package.version}: model archive {path} is not a readable tar.gz ({error})"
            ) from None
        ok, said = target.check(Path(scratch))
    if not ok:
        raise ChampionError(f"version {package.version}: the health check failed: {' '.join(said.split())}")
    return VerifiedArchive(package.version, path, hashlib.sha256(payload).hexdigest(), said)


def _unchecked(store: ObjectStore, package: ModelPackage) -> VerifiedArchive:
    path = _archive_path(store, package)
    return VerifiedArchive(package.version, path, _sha256(path), "not health-checked")


# --- staging and the swap ----------------------------------------------------------------------------------


def package_baselines(package: ModelPackage) -> dict[str, str]:
    """{file name: S3 URI} of the version's data-quality baselines; empty when none was registered."""
    quality = (package.drift_check_baselines or {}).get("ModelDataQuality") or {}
    found = {
        STATISTICS_FILE: (quality.get("Statistics") or {}).get("S3Uri"),
        CONSTRAINTS_FILE: (quality.get("Constraints") or {}).get("S3Uri"),
    }
    return {name: uri for name, uri in found.items() if uri}


def _fill(folder: Path, store: ObjectStore, package: ModelPackage, verified: VerifiedArchive) -> None:
    model = folder / MODEL_FILE
    shutil.copy2(verified.path, model)
    if _sha256(model) != verified.sha256:
        raise ChampionError(
            f"version {package.version}: model archive {verified.path} changed after it was verified"
        )
    described = {"version": package.version, "model_package_arn": package.arn, "group": package.group}
    (folder / CHAMPION_FILE).write_text(json.dumps(described))
    for name, uri in package_baselines(package).items():
        source = store.path_for(uri)
        if not source.is_file():
            raise ChampionError(f"version {package.version}: registered baseline {uri} does not exist")
        (folder / BASELINES_FOLDER).mkdir(exist_ok=True)
        shutil.copy2(source, folder / BASELINES_FOLDER / name)


def stage(target: ChampionTarget, package: ModelPackage | None, verified: VerifiedArchive | None) -> Path:
    """A complete champion folder for `package` (the placeholder for None) in the staging area."""
    folder = target.staging / f"champion-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    try:
        if package is None:
            (folder / PLACEHOLDER).write_text("No model has been approved yet.\n")
        elif verified is None:
            raise ValueError(f"version {package.version} is staged without a verified archive")
        else:
            _fill(folder, target.store, package, verified)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False when the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    return done == 0


def swap(target: ChampionTarget, incoming: Path) -> Path | None:
    """Make `incoming` the champion folder; the path now holding the old one (None if there was none)."""
    folder = target.folder
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(incoming, folder)
        return None
    if _exchange(incoming, folder):
        return incoming
    aside = target.staging / f"previous-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.replace(folder, aside)
    os.replace(incoming, folder)
    return aside


def _swap_back(target: ChampionTarget, aside: Path | None) -> None:
    """Undo `swap`: the old folder returns (or, if there was none, the new one goes)."""
    if aside is None:
        shutil.rmtree(target.folder, ignore_errors=True)
        return
    rejected = swap(target, aside)
    if rejected is not None:
        shutil.rmtree(rejected, ignore_errors=True)


def publish(target: ChampionTarget, package: ModelPackage | None, verified: VerifiedArchive | None) -> None:
    """Stage and swap in `package` (or the placeholder), outside any registry transaction."""
    aside = swap(target, stage(target, package, verified))
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


# --- the champion as the registry sees it ------------------------------------------------------------------


def ensure_champion_prefix(store: ObjectStore, champion_uri: str) -> None:
    """Keep the prefix non-empty: write the placeholder when no champion was published."""
    prefix = champion_uri.rstrip("/")
    if not store.objects(prefix + "/" + MODEL_FILE):
        store.put_text(f"{prefix}/{PLACEHOLDER}", "No model has been approved yet.\n")


def publish_champion(store: ObjectStore, champion_uri: str, package: ModelPackage) -> None:
    """Make `package` the champion (model, champion.json, baselines) in one swap; no health check."""
    publish(ChampionTarget(store, champion_uri), package, _unchecked(store, package))


def current_champion(store: ObjectStore, champion_uri: str) -> dict | None:
    """The champion.json record under `champion_uri`, or None when there is no champion yet."""
    prefix = champion_uri.rstrip("/")
    if not store.objects(f"{prefix}/{CHAMPION_FILE}"):
        return None
    return json.loads(store.read_text(f"{prefix}/{CHAMPION_FILE}"))


def published_version(target: ChampionTarget) -> tuple[bool, int | None]:
    """(whether the champion folder is whole, the version it serves or None for the placeholder)."""
    folder = target.folder
    if (folder / CHAMPION_FILE).is_file():
        try:
            version = json.loads((folder / CHAMPION_FILE).read_text())["version"]
        except (ValueError, KeyError, TypeError):
            return False, None
        return (folder / MODEL_FILE).is_file(), version
    return (folder / PLACEHOLDER).is_file() and not (folder / MODEL_FILE).exists(), None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(target: ChampionTarget) -> list[str]:
    """Delete staging folders of processes that are gone (killed half way); their names."""
    removed = []
    for leftover in sorted(target.staging.glob("*-*-*")) if target.staging.is_dir() else []:
        pid = leftover.name.split("-")[1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover.name)
    return removed


def recover(target: ChampionTarget, registry: LocalRegistry, group: str) -> str | None:
    """Make the champion the registry's newest approved version again after a killed command; what was
    done, or None when nothing was out of line. Run under the registry lock."""
    removed = remove_stale_staging(target)
    newest = registry.latest_approved(group)
    expected = None if newest is None else newest.version
    intact, served = published_version(target)
    if intact and served == expected:
        return f"removed stale staging {', '.join(removed)}" if removed else None
    publish(target, newest, None if newest is None else verify_archive(target, newest))
    return f"champion republished as version {expected} (was {served if intact else 'incomplete'})"


def follow_registry(store: ObjectStore, champion_uri: str, registry, group: str):
    """An `on_change` callback: the champion becomes the newest approved version (swapped in whole, no
    health check; the registry CLI's `change_status` verifies and commits with the status instead)."""

    def on_change(_package: ModelPackage) -> None:
        latest = registry.latest_approved(group)
        target = ChampionTarget(store, champion_uri)
        publish(target, latest, None if latest is None else _unchecked(store, latest))

    return on_change


def _newest_after(registry: LocalRegistry, group: str, version: int, status: str) -> int | None:
    approved = {package.version for package in registry.list(group, APPROVED)}
    if status == APPROVED:
        approved.add(version)
    else:
        approved.discard(version)
    return max(approved, default=None)


def _staged_champion(
    target: ChampionTarget, registry: LocalRegistry, group: str, expected: int | None, verified
) -> Path | None:
    """The staged folder of the champion-to-be; None when the champion stays as it is."""
    intact, served = published_version(target)
    if intact and served == expected:
        return None
    package = None if expected is None else registry.get(group, expected)
    if package is not None and (verified is None or verified.version != expected):
        verified = verify_archive(target, package)  # e.g. the fallback when the champion is rejected
    staged = stage(target, package, verified)
    crash_point("staged")
    return staged


def change_status(
    target: ChampionTarget,
    registry: LocalRegistry,
    group: str,
    version: int,
    status: str,
    reason: str | None = None,
    verified: VerifiedArchive | None = None,
) -> ModelPackage:
    """Set a version's status and make the champion the newest approved version, both or neither.

    Run under the registry lock. `verified` is the approved version's checked archive; any other version
    that becomes champion is verified here. The champion is staged, swapped in inside the status
    transaction and swapped back if that transaction fails."""
    recover(target, registry, group)
    registry.get(group, version)  # an unknown version fails before anything is staged
    expected = _newest_after(registry, group, version, status)
    staged = _staged_champion(target, registry, group, expected, verified)
    swapped: list[Path | None] = []

    def before_commit(_package: ModelPackage, newest: ModelPackage | None) -> None:
        if (None if newest is None else newest.version) != expected:
            raise ChampionError("the registry changed during the command (a concurrent writer); try again")
        if staged is not None:
            swapped.append(swap(target, staged))
            crash_point("swapped")

    try:
        package = registry.update_approval(group, version, status, reason, before_commit)
    except BaseException:
        if swapped:
            _swap_back(target, swapped[0])
        elif staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
        raise
    crash_point("committed")
    if swapped and swapped[0] is not None:
        shutil.rmtree(swapped[0], ignore_errors=True)
    if status == APPROVED:
        mirror_after_approval(registry, package)  # committed: a mirror failure is reported, not undone
    return package
