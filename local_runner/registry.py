"""A local model registry in one SQLite file, with SageMaker Model Registry semantics.

Model package groups hold numbered model packages (versions 1, 2, ... per group, assigned in a write
transaction so two runs never get the same number); each package carries its artifact URL, image, model
metrics, drift-check baselines, customer metadata and one of SageMaker's three approval statuses. As in
SageMaker, a package can only be registered into a group that exists. `describe_model_package` and
`list_model_packages` answer in the shapes of the boto3 `sagemaker` client's responses (botocore's
`DescribeModelPackageOutput` and `ListModelPackagesOutput`), so code written against boto3 can be
pointed at this registry instead. The file persists across runs; nothing is opened until a method runs,
only writes create it, and reads write nothing. `update_approval` can run a hook inside its transaction
(the registry CLI publishes the champion there), so the status and what follows from it commit together.
"""

from __future__ import annotations

import builtins
import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local_runner.errors import RunnerError

APPROVED = "Approved"
REJECTED = "Rejected"
PENDING = "PendingManualApproval"
# botocore's ModelApprovalStatus enum, in its order.
APPROVAL_STATUSES = (APPROVED, REJECTED, PENDING)
SORT_ORDERS = ("Ascending", "Descending")
# botocore's EntityName pattern for a model package group name.
_GROUP_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ARN = re.compile(r"^arn:aws[a-z\-]*:sagemaker:([a-z0-9\-]+):([0-9]{12}):model-package/([^/]+)/([0-9]+)$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_package_groups (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS model_packages (
    group_name TEXT NOT NULL REFERENCES model_package_groups(name),
    version INTEGER NOT NULL,
    approval_status TEXT NOT NULL,
    approval_description TEXT NOT NULL,
    model_data_url TEXT NOT NULL,
    image_uri TEXT NOT NULL,
    metrics TEXT,
    drift_check_baselines TEXT,
    customer_metadata TEXT,
    execution_id TEXT,
    content_types TEXT NOT NULL,
    response_types TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (group_name, version)
);
"""


# update_approval's hook: (the changed package, the newest approved version) inside the transaction.
BeforeCommit = Callable[["ModelPackage", "ModelPackage | None"], object]


class RegistryError(RunnerError, KeyError):
    """An unknown model package group or version; the message names both."""

    def __str__(self) -> str:
        # KeyError would show the message in quotes.
        return str(self.args[0]) if self.args else ""


def check_approval_status(status: str) -> str:
    """`status` if it is a model-package approval status, else a `ValueError`."""
    if status not in APPROVAL_STATUSES:
        raise ValueError(f"approval status {status!r} is not one of {', '.join(APPROVAL_STATUSES)}")
    return status


def _check_group_name(name: str) -> str:
    if not isinstance(name, str) or not _GROUP_NAME.match(name):
        raise ValueError(
            f"model package group name {name!r} must be 1-63 letters, digits and single hyphens, "
            "starting and ending with a letter or digit"
        )
    return name


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str] | None:
    """SageMaker's CustomerMetadataProperties is a map of strings to strings."""
    if metadata is None:
        return None
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"customer metadata {key!r}: {value!r} must map a string to a string")
    return dict(metadata)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class ModelPackage:
    """One version of a model package group, as stored."""

    group: str
    version: int
    arn: str
    approval_status: str
    model_data_url: str
    image_uri: str
    metrics: dict | None
    drift_check_baselines: dict | None
    customer_metadata: dict[str, str] | None
    execution_id: str | None
    created_at: str
    updated_at: str
    approval_description: str = ""
    content_types: tuple[str, ...] = field(default=())
    response_types: tuple[str, ...] = field(default=())


class LocalRegistry:
    """Model package groups and their versions in the SQLite file at `path` (created on first use)."""

    def __init__(self, path: str | Path, region: str = "us-east-1", account: str = "000000000000"):
        if not re.fullmatch(r"[0-9]{12}", account):
            raise ValueError(f"account {account!r} must be 12 digits")
        self.path = Path(path)
        self.region = region
        self.account = account

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode; `write` holds the database's write lock until the block ends.

        Only a write creates the file and its schema; a read of a missing file is a `RegistryError`, and a
        read writes nothing (a hot journal left by a killed writer is still rolled back, as SQLite does)."""
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        elif not self.path.is_file():
            raise RegistryError(f"no model registry at {self.path}")
        else:
            uri = f"{self.path.resolve().as_uri()}?mode=rw"
            connection = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
        connection.row_factory = sqlite3.Row
        try:
            if not write:
                yield connection
                return
            connection.executescript(_SCHEMA)
            # IMMEDIATE takes the write lock before the version number is read, so two writers queue.
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def arn(self, group: str, version: int) -> str:
        """The SageMaker-style model package ARN of `group`'s `version`."""
        return f"arn:aws:sagemaker:{self.region}:{self.account}:model-package/{group}/{version}"

    def create_group(self, name: str, description: str = "") -> None:
        """Create the model package group `name`; does nothing when it exists."""
        _check_group_name(name)
        with self._connect(write=True) as db:
            db.execute(
                "INSERT OR IGNORE INTO model_package_groups (name, description, created_at) VALUES (?, ?, ?)",
                (name, description, _now()),
            )

    def groups(self) -> builtins.list[str]:
        """The model package group names, sorted."""
        with self._connect() as db:
            return [row["name"] for row in db.execute("SELECT name FROM model_package_groups ORDER BY name")]

    def _require_group(self, db: sqlite3.Connection, group: str) -> None:
        if db.execute("SELECT 1 FROM model_package_groups WHERE name = ?", (group,)).fetchone() is None:
            raise RegistryError(f"model package group {group!r} does not exist in {self.path}")

    def register(
        self,
        group: str,
        model_data_url: str,
        image_uri: str,
        model_metrics: dict | None = None,
        drift_check_baselines: dict | None = None,
        approval_status: str = PENDING,
        customer_metadata: Mapping[str, str] | None = None,
        execution_id: str | None = None,
        content_types: Sequence[str] = ("text/csv",),
        response_types: Sequence[str] = ("application/json",),
    ) -> ModelPackage:
        """Add the next version to `group` (which must exist, as in SageMaker) and return it."""
        check_approval_status(approval_status)
        metadata = _check_metadata(customer_metadata)
        if not model_data_url or not image_uri:
            raise ValueError("a model package needs a model data URL and an image URI")
        now = _now()
        with self._connect(write=True) as db:
            self._require_group(db, group)
            (version,) = db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_packages WHERE group_name = ?", (group,)
            ).fetchone()
            db.execute(
                "INSERT INTO model_packages VALUES (?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    group,
                    version,
                    approval_status,
                    model_data_url,
                    image_uri,
                    _dump(model_metrics),
                    _dump(drift_check_baselines),
                    _dump(metadata),
                    execution_id,
                    json.dumps(list(content_types)),
                    json.dumps(list(response_types)),
                    now,
                    now,
                ),
            )
        return self.get(group, version)

    def _package(self, row: sqlite3.Row) -> ModelPackage:
        return ModelPackage(
            group=row["group_name"],
            version=row["version"],
            arn=self.arn(row["group_name"], row["version"]),
            approval_status=row["approval_status"],
            model_data_url=row["model_data_url"],
            image_uri=row["image_uri"],
            metrics=_load(row["metrics"]),
            drift_check_baselines=_load(row["drift_check_baselines"]),
            customer_metadata=_load(row["customer_metadata"]),
            execution_id=row["execution_id"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            approval_description=row["approval_description"],
            content_types=tuple(json.loads(row["content_types"])),
            response_types=tuple(json.loads(row["response_types"])),
        )

    def get(self, group: str, version: int) -> ModelPackage:
        """Version `version` of `group`; a missing group or version is a `RegistryError`."""
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM model_packages WHERE group_name = ? AND version = ?", (group, version)
            ).fetchone()
            if row is None:
                self._require_group(db, group)
                raise RegistryError(f"model package group {group!r} has no version {version}")
        return self._package(row)

    def list(self, group: str, approval_status: str | None = None) -> builtins.list[ModelPackage]:
        """The versions of `group`, newest first, optionally only those with `approval_status`."""
        if approval_status is not None:
            check_approval_status(approval_status)
        with self._connect() as db:
            self._require_group(db, group)
            rows = db.execute(
                "SELECT * FROM model_packages WHERE group_name = ? AND (? IS NULL OR approval_status = ?) "
                "ORDER BY version DESC",
                (group, approval_status, approval_status),
            ).fetchall()
        return [self._package(row) for row in rows]

    def latest_approved(self, group: str) -> ModelPackage | None:
        """The newest approved version of `group`, or None when none is approved."""
        approved = self.list(group, APPROVED)
        return approved[0] if approved else None

    def latest_metadata(self, group: str, key: str) -> str:
        """A customer-metadata value of the newest version of `group` (any approval status), or "" when the
        group has no version or that version has no such key; e.g. the DataVersion it was trained on."""
        packages = self.list(group)
        if not packages:
            return ""
        return (packages[0].customer_metadata or {}).get(key, "")

    def update_approval(
        self,
        group: str,
        version: int,
        status: str,
        description: str | None = None,
        before_commit: BeforeCommit | None = None,
    ) -> ModelPackage:
        """Set the approval status (any of the three, from any other, as UpdateModelPackage allows); a
        `description` of None keeps the stored one. `before_commit(package, newest_approved)` sees the
        transaction's outcome before it commits; when it raises, nothing changes."""
        check_approval_status(status)
        with self._connect(write=True) as db:
            updated = db.execute(
                "UPDATE model_packages SET approval_status = ?, "
                "approval_description = COALESCE(?, approval_description), updated_at = ? "
                "WHERE group_name = ? AND version = ?",
                (status, description, _now(), group, version),
            ).rowcount
            if not updated:
                self._require_group(db, group)
                raise RegistryError(f"model package group {group!r} has no version {version}")
            query = "SELECT * FROM model_packages WHERE group_name = ? AND {} ORDER BY version DESC LIMIT 1"
            package = self._package(db.execute(query.format("version = ?"), (group, version)).fetchone())
            if before_commit is not None:
                newest = db.execute(query.format("approval_status = ?"), (group, APPROVED)).fetchone()
                before_commit(package, None if newest is None else self._package(newest))
        return package

    # --- boto3-shaped views -------------------------------------------------------------------------

    def parse_arn(self, arn: str) -> tuple[str, int]:
        """The group and version of a model package ARN of this registry's region and account."""
        match = _ARN.match(arn)
        if match is None:
            raise ValueError(f"{arn!r} is not a versioned model package ARN")
        region, account, group, version = match.groups()
        if (region, account) != (self.region, self.account):
            raise RegistryError(
                f"model package {arn} is in {region}/{account}, this registry is {self.region}/{self.account}"
            )
        return group, int(version)

    def describe_model_package(self, arn: str) -> dict[str, Any]:
        """Like `sagemaker.describe_model_package(ModelPackageName=arn)`."""
        return describe_shape(self.get(*self.parse_arn(arn)))

    def list_model_packages(
        self, group: str, approval_status: str | None = None, sort_order: str = "Descending"
    ) -> dict[str, Any]:
        """Like `sagemaker.list_model_packages(ModelPackageGroupName=..., ModelApprovalStatus=..., SortBy=
        "CreationTime", SortOrder=...)`; as there, an unknown group gives an empty list."""
        if sort_order not in SORT_ORDERS:
            raise ValueError(f"sort order {sort_order!r} is not one of {', '.join(SORT_ORDERS)}")
        try:
            packages = self.list(group, approval_status)
        except RegistryError:
            packages = []
        if sort_order == "Ascending":
            packages.reverse()
        return {"ModelPackageSummaryList": [summary_shape(package) for package in packages]}


def summary_shape(package: ModelPackage) -> dict[str, Any]:
    """botocore's ModelPackageSummary; a versioned package's name is its group's name."""
    return {
        "ModelPackageName": package.group,
        "ModelPackageGroupName": package.group,
        "ModelPackageVersion": package.version,
        "ModelPackageArn": package.arn,
        "CreationTime": datetime.fromisoformat(package.created_at),  # aware, as boto3 returns
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": package.approval_status,
    }


def describe_shape(package: ModelPackage) -> dict[str, Any]:
    """botocore's DescribeModelPackageOutput, with the members this registry stores."""
    shape: dict[str, Any] = {
        **summary_shape(package),
        "InferenceSpecification": {
            "Containers": [{"Image": package.image_uri, "ModelDataUrl": package.model_data_url}],
            "SupportedContentTypes": list(package.content_types),
            "SupportedResponseMIMETypes": list(package.response_types),
        },
        "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
        "CertifyForMarketplace": False,
        "LastModifiedTime": datetime.fromisoformat(package.updated_at),
    }
    optional = {
        "ModelMetrics": package.metrics,
        "DriftCheckBaselines": package.drift_check_baselines,
        "CustomerMetadataProperties": package.customer_metadata,
        "ApprovalDescription": package.approval_description or None,
        "MetadataProperties": {"GeneratedBy": package.execution_id} if package.execution_id else None,
    }
    shape.update({key: value for key, value in optional.items() if value is not None})
    return shape
