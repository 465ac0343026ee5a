"""The job code as a deterministic source bundle, and the S3 layout the pipeline reads it from.

`build_source_bundle` packs `containers/` (entry scripts and the `rul` package, no caches) into a
`sourcedir.tar.gz` whose bytes depend only on the files' paths and contents: sorted entries, mtime 0,
uid/gid 0, empty owner names, normalised modes and a gzip header without a timestamp. Its version is the
first 12 hex digits of the tarball's sha256. The tarball is written only when its bytes change, and then
atomically (a temporary file renamed over it), so concurrent runs never read a half-written bundle.
Under a code prefix `s3://<bucket>/code/<version>/` the training jobs read `sourcedir.tar.gz` (script mode
`source_dir`) and the processing jobs read the same files unpacked under `src/` (entry script
`src/<name>.py`, library prefix `src/`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

CONTAINERS_DIR = Path(__file__).resolve().parent.parent / "containers"  # the job scripts and `rul`

SOURCE_BUNDLE_NAME = "sourcedir.tar.gz"
UNPACKED_PREFIX = "src/"
_EXCLUDED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class SourceBundle:
    """A built bundle: its content version, the tarball path and the archived files (POSIX, sorted)."""

    version: str
    tarball: Path
    files: tuple[str, ...]


def bundle_files(containers_dir: Path) -> tuple[str, ...]:
    """Relative POSIX paths of the files to ship, sorted; caches and compiled files left out."""
    root = Path(containers_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"containers_dir {root} is not a directory")
    selected = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part in _EXCLUDED_DIRS or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(_EXCLUDED_SUFFIXES):
            selected.append(relative.as_posix())
    return tuple(sorted(selected))


def _tar_bytes(root: Path, files: tuple[str, ...]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in files:
            data = (root / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755 if (root / name).stat().st_mode & 0o111 else 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _write_atomically(path: Path, payload: bytes) -> None:
    """Readers of `path` (a concurrent run's upload) see the old bundle or the new one, never a torn one."""
    temporary = path.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        temporary.write_bytes(payload)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def build_source_bundle(containers_dir: Path, out_dir: Path) -> SourceBundle:
    """Write `out_dir/sourcedir.tar.gz` of `containers_dir`; the same files give the same bytes."""
    root = Path(containers_dir)
    files = bundle_files(root)
    if not files:
        raise FileNotFoundError(f"containers_dir {root} holds no files to bundle")
    compressed = io.BytesIO()
    # filename="" and mtime=0 keep the gzip header free of the path and the clock.
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=9) as stream:
        stream.write(_tar_bytes(root, files))
    payload = compressed.getvalue()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tarball = out / SOURCE_BUNDLE_NAME
    if not tarball.is_file() or tarball.read_bytes() != payload:
        _write_atomically(tarball, payload)
    return SourceBundle(version=hashlib.sha256(payload).hexdigest()[:12], tarball=tarball, files=files)


def code_uri_for(bucket: str, version: str) -> str:
    """Code prefix of one bundle version: `s3://<bucket>/code/<version>/`."""
    return f"s3://{bucket}/code/{version}/"


def _prefix(code_uri: str) -> str:
    if not code_uri.startswith("s3://"):
        raise ValueError(f"code_uri={code_uri!r} must be an s3:// URI")
    return code_uri if code_uri.endswith("/") else f"{code_uri}/"


def source_dir_uri(code_uri: str) -> str:
    """The training `source_dir`: `<code_uri>sourcedir.tar.gz`."""
    return f"{_prefix(code_uri)}{SOURCE_BUNDLE_NAME}"


def library_uri(code_uri: str) -> str:
    """Prefix of the unpacked files, mounted as the processing jobs' library: `<code_uri>src/`."""
    return f"{_prefix(code_uri)}{UNPACKED_PREFIX}"


def script_uri(code_uri: str, name: str) -> str:
    """A processing entry script: `<code_uri>src/<name>`."""
    return f"{library_uri(code_uri)}{name}"
