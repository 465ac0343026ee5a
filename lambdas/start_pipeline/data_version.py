"""The data version a training run is keyed by, from the S3 object listing of its input prefix.

SageMaker's step cache compares a step's request arguments (S3 URIs, not bytes), so the starter passes a
`DataVersion` parameter that changes when the data does. Reading every byte from a Lambda function would
cost time and KMS calls; the listing already carries, per object, the key, the size and the ETag, which
"reflects changes only to the contents of an object, not its metadata" (S3 API reference, Object.ETag).
`listing_version` hashes (key relative to the prefix, size, ETag) of every data file under the prefix.

What changes the version: a file added, removed, renamed, resized or rewritten. What does not: tags, the
listing's order or page size, files without a data suffix. Metadata is not in the ETag, but changing
it copies the object onto itself, which may give a new ETag (see below). Uploads of identical bytes may
or may not change it: the ETag is an MD5 of the bytes only for single-part uploads with SSE-S3 or no
encryption; with SSE-KMS (the data bucket's default) or a multipart upload it is not, so re-uploading the
same file gives a new version and a fresh run. That errs on the safe side (a retrain on equal data, never
a missed change). The version is prefixed `s3-` because it is not the manifest's content hash
(`rul.lineage`), which the preprocess job computes from the bytes and records beside the model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

VERSION_PREFIX = "s3-"
VERSION_HEX_DIGITS = 16


@dataclass(frozen=True)
class ListedObject:
    """One data file of a listing: key relative to the listed prefix, size in bytes, ETag without quotes."""

    name: str
    size: int
    etag: str


def listing_version(objects: Iterable[ListedObject]) -> str:
    """`s3-` and the first hex digits of a SHA-256 over the sorted (name, size, ETag) lines."""
    lines = sorted(f"{item.name}\t{item.size}\t{item.etag}" for item in objects)
    if not lines:
        raise ValueError("a data version needs at least one object")
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return VERSION_PREFIX + digest[:VERSION_HEX_DIGITS]


def list_data_objects(s3: Any, bucket: str, prefix: str, suffixes: Sequence[str]) -> list[ListedObject]:
    """Every object under `prefix` whose key ends with one of `suffixes` (all pages; no folder markers)."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith("/") or not key.lower().endswith(tuple(suffixes)):
                continue
            found.append(ListedObject(key[len(prefix) :], int(item["Size"]), item["ETag"].strip('"')))
    return found
