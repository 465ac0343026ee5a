"""Lambda entry point: back up the model registry and the endpoint configuration to the artifacts bucket.

Triggers (EventBridge, see ``stacks.backup``):

* "SageMaker Endpoint State Change" with ``EndpointStatus`` ``IN_SERVICE`` for one of our endpoints: a
  deployment (create, update, blue/green traffic shift or rollback) has finished, whoever started it, so the
  deploy function needs no change. SageMaker may send an event more than once: each makes its own backup.
* "Scheduled Event" of the backup schedule: catches approval changes that deployed nothing.

One run writes ``<prefix><UTC time>-<event id>/backup.json`` (endpoints, registry, artifact versions; see
``collect``), then ``<prefix>latest.json``, a pointer holding that key and the document's sha256. The
pointer is moved only when the model package group exists: a backup taken after the group was deleted is
still written, but ``latest`` keeps naming the last backup that can restore it. The pointer never moves
backwards: two runs at once (an endpoint event and the schedule) race on it, so it is written with S3
conditional writes (``IfNoneMatch: *`` to create it, ``IfMatch: <ETag>`` to replace the version just
read, whose ``created-at`` metadata is older), and a lost race is re-read and decided again. The bucket's
default encryption (the project key) applies; old pointers stay as noncurrent versions of the versioned
bucket.

Every path returns {"action", "reason", ...} and logs one JSON line; AWS errors are logged, then raised
(EventBridge and Lambda retry, then the dead-letter queue).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common.clients import make_clients
from lambdas.common.decisions import DecisionLog, Ignored
from lambdas.common.events import ENDPOINT_STATE_CHANGE, SAGEMAKER_SOURCE
from lambdas.common.handler import run_logged

from .collect import artifact_uris, artifact_versions, endpoint_backup, registry_backup
from .config import BackupConfig, load_config

DECISIONS = DecisionLog("backup_registry")
decide = DECISIONS.decide

FORMAT_VERSION = 1
BACKUP_FILE = "backup.json"
LATEST_FILE = "latest.json"
ENDPOINT_EVENT = (SAGEMAKER_SOURCE, ENDPOINT_STATE_CHANGE)
SCHEDULE_EVENT = ("aws.events", "Scheduled Event")
IN_SERVICE = "IN_SERVICE"  # the events spell statuses in upper snake case, DescribeEndpoint "InService"
_SAFE_ID = re.compile(r"[^A-Za-z0-9-]")
CREATED_AT_METADATA = "created-at"  # latest.json's user metadata: the time of the backup it names
POINTER_ATTEMPTS = 5
LOST_RACE_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


def parse_trigger(event: Any, config: BackupConfig) -> dict[str, str]:
    """What started the run: {"kind": "deployment"|"schedule", "event_id", ...}; `Ignored` otherwise."""
    if not isinstance(event, dict):
        raise Ignored(f"event is not an object: {type(event).__name__}")
    kind = (event.get("source"), event.get("detail-type"))
    event_id = str(event.get("id") or "no-id")
    if kind == SCHEDULE_EVENT:
        return {"kind": "schedule", "event_id": event_id}
    if kind != ENDPOINT_EVENT:
        raise Ignored(f"unexpected source/detail-type {kind[0]!r}/{kind[1]!r}")
    raw_detail = event.get("detail")
    detail = raw_detail if isinstance(raw_detail, dict) else {}
    name, status = detail.get("EndpointName"), detail.get("EndpointStatus")
    if name not in config.endpoint_names:
        raise Ignored(f"endpoint {name!r} is not one of {', '.join(config.endpoint_names)}")
    if status != IN_SERVICE:
        raise Ignored(f"endpoint {name} is {status!r}, not {IN_SERVICE}")
    return {"kind": "deployment", "event_id": event_id, "endpoint": name}


def build_document(
    sagemaker: Any, s3: Any, config: BackupConfig, trigger: dict[str, str], now: datetime
) -> dict[str, Any]:
    """The backup: endpoints, registry and the versions of the artifacts they point at."""
    endpoints = [endpoint_backup(sagemaker, name) for name in config.endpoint_names]
    registry = registry_backup(sagemaker, config.group_name)
    uris = artifact_uris(registry, endpoints)
    return {
        "FormatVersion": FORMAT_VERSION,
        "CreatedAt": now.isoformat(),
        "Trigger": trigger,
        "Endpoints": endpoints,
        "Registry": registry,
        "Artifacts": artifact_versions(s3, uris, config.bucket, config.artifact_prefixes),
    }


def backup_key(config: BackupConfig, now: datetime, event_id: str) -> str:
    """`<prefix><UTC time>-<event id>/backup.json`: sorts by time, unique per event."""
    return f"{config.prefix}{now.strftime('%Y%m%dT%H%M%SZ')}-{_SAFE_ID.sub('', event_id)[:36]}/{BACKUP_FILE}"


def _put_json(
    s3: Any, bucket: str, key: str, body: bytes, metadata: dict[str, str], **condition: str
) -> str | None:
    response = s3.put_object(
        Bucket=bucket, Key=key, Body=body, ContentType="application/json", Metadata=metadata, **condition
    )
    return response.get("VersionId")


class PointerContention(RuntimeError):
    """Other runs kept replacing latest.json between this run's read and write; Lambda retries the event."""


def _lost_race(error: ClientError) -> bool:
    # 412: the condition failed (created or replaced meanwhile); 409: a concurrent conditional write.
    return error.response.get("Error", {}).get("Code") in LOST_RACE_CODES


def move_latest(s3: Any, config: BackupConfig, pointer: dict[str, Any]) -> str:
    """Point `<prefix>latest.json` at `pointer` unless it names a backup at least as new; what happened."""
    key = f"{config.prefix}{LATEST_FILE}"
    body = json.dumps(pointer, sort_keys=True).encode()
    metadata = {"sha256": pointer["Sha256"], CREATED_AT_METADATA: pointer["CreatedAt"]}
    condition = {"IfNoneMatch": "*"}  # first try: create it, so a missing pointer needs no HeadObject
    for _ in range(POINTER_ATTEMPTS):
        try:
            _put_json(s3, config.bucket, key, body, metadata, **condition)
            return f"now {LATEST_FILE}"
        except ClientError as error:
            if not _lost_race(error):
                raise
        head = s3.head_object(Bucket=config.bucket, Key=key)
        current = head.get("Metadata", {}).get(CREATED_AT_METADATA, "")
        if _not_older(current, pointer["CreatedAt"]):
            return f"{LATEST_FILE} kept: it names a backup of {current}, not older than this one"
        condition = {"IfMatch": head["ETag"]}
    raise PointerContention(f"{LATEST_FILE} changed under every one of {POINTER_ATTEMPTS} attempts")


def _not_older(current: str, ours: str) -> bool:
    """`current` (the pointed backup's time) is at least `ours`; an unreadable time counts as older."""
    try:
        return datetime.fromisoformat(current) >= datetime.fromisoformat(ours)
    except ValueError:
        return False


def run(
    event: Any, config: BackupConfig, sagemaker: Any, s3: Any, clock: Callable[[], datetime]
) -> dict[str, Any]:
    """Act on one event with the given clients and clock (the tests call this)."""
    try:
        trigger = parse_trigger(event, config)
    except Ignored as ignored:
        return decide("ignored", str(ignored))
    now = clock()
    document = build_document(sagemaker, s3, config, trigger, now)
    body = json.dumps(document, default=str, indent=1, sort_keys=True).encode()
    digest = hashlib.sha256(body).hexdigest()
    key = backup_key(config, now, trigger["event_id"])
    version_id = _put_json(s3, config.bucket, key, body, {"sha256": digest})
    fields: dict[str, Any] = {
        "trigger": trigger,
        "backup_uri": f"s3://{config.bucket}/{key}",
        "sha256": digest,
        "packages": len(document["Registry"].get("ModelPackages", [])),
        "missing_artifacts": [a["Uri"] for a in document["Artifacts"] if a.get("Missing")],
    }
    if document["Registry"].get("Absent"):
        reason = f"model package group {config.group_name} does not exist; {LATEST_FILE} left as it was"
        return decide("written", reason, logging.WARNING, **fields)
    pointer = {"Key": key, "VersionId": version_id, "Sha256": digest, "CreatedAt": now.isoformat()}
    latest = move_latest(s3, config, pointer)
    level = logging.WARNING if fields["missing_artifacts"] else logging.INFO
    return decide("written", f"backup of {fields['packages']} model package(s), {latest}", level, **fields)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda handler: validate the environment, build the clients, run; failures are logged, then raised."""
    return run_logged(DECISIONS, lambda: _invoke(event), retry=(PointerContention,))


def _invoke(event: Any) -> dict[str, Any]:
    config = load_config(os.environ)
    sagemaker, s3 = make_clients("sagemaker", "s3")
    return run(event, config, sagemaker, s3, lambda: datetime.now(UTC))
