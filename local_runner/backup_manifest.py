"""The documents of a registry export (`registry export DIR`) and the checks of their shape.

An export folder holds `manifest.json` (format, time, groups, package count, served version, missing
objects, and the sha256 and size of every file), `registry.json` (the packages in the DescribeModelPackage
shape) and `endpoint.json` (the version the local endpoint served, and its group). Before an import
touches anything, `manifest_problems`, `registry_json_problems` and `endpoint_json_problems` check the
parsed documents and return every problem, each naming the file, the key and what is wrong: an unknown or
missing key, a value of the wrong type, a version number that is not a positive integer, a version listed
twice, documents that disagree with each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from local_runner.registry import APPROVAL_STATUSES

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
REGISTRY_JSON = "registry.json"
ENDPOINT_JSON = "endpoint.json"
ENDPOINT_KEYS = ("served_version", "group")
FILE_ENTRY_KEYS = ("sha256", "size")
_SHA256 = re.compile(r"[0-9a-f]{64}")

Check = tuple[Callable[[Any], bool], str]  # (accepts the value, what it must be)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_version(value: Any) -> bool:
    """A model package version number: a positive integer (JSON `true` is not one)."""
    return _integer(value) and value >= 1


def _iso_time(value: Any) -> bool:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) and item for item in value)


MANIFEST_CHECKS: dict[str, Check] = {
    "format_version": (lambda value: _integer(value) and value == FORMAT_VERSION, str(FORMAT_VERSION)),
    "created_at": (_iso_time, "an ISO 8601 time"),
    "groups": (lambda value: _names(value) and len(set(value)) == len(value), "a list of distinct names"),
    "packages": (lambda value: _integer(value) and value >= 0, "a whole number >= 0"),
    "served_version": (lambda value: value is None or is_version(value), "null or a version number >= 1"),
    "missing_objects": (_names, "a list of URIs"),
    "files": (lambda value: isinstance(value, dict) and bool(value), "an object of files"),
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _key_problems(where: str, document: Any, keys: Collection[str]) -> list[str]:
    """Unknown and missing keys of a JSON object, or that it is no object."""
    if not isinstance(document, dict):
        return [f"{where} must be a JSON object (got {type(document).__name__})"]
    problems = []
    unknown = sorted(set(document) - set(keys))
    missing = sorted(set(keys) - set(document))
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
    if missing:
        problems.append(f"{where}: missing key(s) {', '.join(map(repr, missing))}")
    return problems


def _file_entry_problems(files: dict[str, Any]) -> list[str]:
    problems = []
    for name, entry in files.items():
        where = f"{MANIFEST_FILE}: files[{name!r}]"
        found = _key_problems(where, entry, FILE_ENTRY_KEYS)
        if not found and not (isinstance(entry["sha256"], str) and _SHA256.fullmatch(entry["sha256"])):
            found.append(f"{where}: sha256 must be 64 lowercase hex digits (got {_shown(entry['sha256'])})")
        if not found and not (_integer(entry["size"]) and entry["size"] >= 0):
            found.append(f"{where}: size must be a whole number >= 0 (got {_shown(entry['size'])})")
        problems.extend(found)
    return problems


def manifest_problems(manifest: Any) -> list[str]:
    """Every problem of a parsed manifest; a manifest of another format version gets only that one."""
    if isinstance(manifest, dict) and "format_version" in manifest:
        accepts, expected = MANIFEST_CHECKS["format_version"]
        if not accepts(manifest["format_version"]):
            found = _shown(manifest["format_version"])
            return [f"{MANIFEST_FILE}: format_version must be {expected} (got {found})"]
    problems = _key_problems(MANIFEST_FILE, manifest, MANIFEST_CHECKS)
    if not isinstance(manifest, dict):
        return problems
    for key, (accepts, expected) in MANIFEST_CHECKS.items():
        if key in manifest and not accepts(manifest[key]):
            problems.append(f"{MANIFEST_FILE}: {key} must be {expected} (got {_shown(manifest[key])})")
    if isinstance(manifest.get("files"), dict):
        problems.extend(_file_entry_problems(manifest["files"]))
    return problems


def _package_problems(index: int, item: Any) -> list[str]:
    where = f"{REGISTRY_JSON}[{index}]"
    if not isinstance(item, dict):
        return [f"{where} must be a JSON object (got {type(item).__name__})"]
    group, version = item.get("ModelPackageGroupName"), item.get("ModelPackageVersion")
    status = item.get("ModelApprovalStatus")
    problems = []
    if not (isinstance(group, str) and group):
        problems.append(f"{where}: ModelPackageGroupName must be a name (got {_shown(group)})")
    if not is_version(version):
        problems.append(f"{where}: ModelPackageVersion must be a version number >= 1 (got {_shown(version)})")
    if status not in APPROVAL_STATUSES:
        choices = ", ".join(APPROVAL_STATUSES)
        problems.append(f"{where}: ModelApprovalStatus must be one of {choices} (got {_shown(status)})")
    return problems


def registry_json_problems(listed: Any, manifest: dict[str, Any]) -> list[str]:
    """Every problem of parsed registry.json: each package's group, version and status, no version listed
    twice, and agreement with the manifest's package count and groups."""
    if not isinstance(listed, list):
        return [f"{REGISTRY_JSON} must be a JSON list (got {type(listed).__name__})"]
    problems = [problem for index, item in enumerate(listed) for problem in _package_problems(index, item)]
    if problems:
        return problems
    seen: set[tuple[str, int]] = set()
    for item in listed:
        key = (item["ModelPackageGroupName"], item["ModelPackageVersion"])
        if key in seen:
            problems.append(f"{REGISTRY_JSON}: version {key[1]} of {key[0]} is listed twice")
        seen.add(key)
    if len(listed) != manifest["packages"]:
        problems.append(
            f"{REGISTRY_JSON} lists {len(listed)} package(s); {MANIFEST_FILE} says {manifest['packages']}"
        )
    unknown = sorted({group for group, _ in seen} - set(manifest["groups"]))
    if unknown:
        problems.append(f"{REGISTRY_JSON} names group(s) {', '.join(unknown)} that {MANIFEST_FILE} does not")
    return problems


def endpoint_json_problems(state: Any, listed: list[dict[str, Any]], manifest: dict[str, Any]) -> list[str]:
    """Every problem of parsed endpoint.json: its keys and types, and that the version it served is the
    manifest's and one registry.json lists."""
    problems = _key_problems(ENDPOINT_JSON, state, ENDPOINT_KEYS)
    if problems:
        return problems
    served, group = state["served_version"], state["group"]
    if not (isinstance(group, str) and group):
        problems.append(f"{ENDPOINT_JSON}: group must be a name (got {_shown(group)})")
    if not (served is None or is_version(served)):
        problems.append(
            f"{ENDPOINT_JSON}: served_version must be null or a version number >= 1 (got {_shown(served)})"
        )
    elif served != manifest["served_version"]:
        problems.append(
            f"{ENDPOINT_JSON} says version {served} was served; "
            f"{MANIFEST_FILE} says {manifest['served_version']}"
        )
    elif served is not None and not any(
        (item["ModelPackageGroupName"], item["ModelPackageVersion"]) == (group, served) for item in listed
    ):
        problems.append(f"{ENDPOINT_JSON}: the served version {served} of {group} is not in {REGISTRY_JSON}")
    return problems
