"""A local stand-in for S3: `s3://bucket/key` is the file `<root>/bucket/key`.

Reads follow SageMaker's S3Prefix semantics: a URI names every object whose key starts with it, so
`s3://b/data/` and `s3://b/data` both bring the folder, and `s3://b/data/x.csv` brings one file. Like an S3
PUT, every write is atomic: the bytes go to a temporary file in the target's folder, then `os.replace` puts
it in place, so a reader sees the old object or the new one, never a torn one. Keys with a segment that
starts with `.tmp-` are such in-flight writes (or staging areas) and are invisible to reads. Constructing a
store touches nothing; folders are made by the first write under them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from local_runner.errors import RunnerError

IN_FLIGHT = ".tmp-"  # the prefix of temporary files and staging folders


class ObjectStoreError(RunnerError, LookupError):
    """An S3 URI is malformed or names no object."""


def temporary_sibling(target: Path, label: str = "") -> Path:
    """A fresh hidden name next to `target` (same folder, so same file system for `os.replace`)."""
    return target.parent / f"{IN_FLIGHT}{label}{os.getpid()}-{uuid.uuid4().hex[:8]}-{target.name}"


def replace_atomically(target: Path, write) -> None:
    """Call `write(temporary_path)`, then rename the temporary file over `target`; no trace on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(target)
    try:
        write(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def copy_file_atomically(source: str | Path, target: str | Path) -> Path:
    """`shutil.copy2` that readers of `target` never see half done."""
    replace_atomically(Path(target), lambda temporary: shutil.copy2(source, temporary))
    return Path(target)


def _visible(relative: Path) -> bool:
    return not any(part.startswith(IN_FLIGHT) for part in relative.parts)


class ObjectStore:
    """A local S3 stand-in rooted at `root`: `s3://bucket/key` is `<root>/bucket/key`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path_for(self, uri: str) -> Path:
        """The local path of an `s3://bucket/key` URI; a non-S3 or escaping URI is an `ObjectStoreError`."""
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise ObjectStoreError(f"not an S3 URI: {uri!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket or ".." in Path(key).parts:
            raise ObjectStoreError(f"malformed S3 URI: {uri!r}")
        return self.root / bucket / key

    def objects(self, uri: str) -> list[tuple[str, Path]]:
        """Every object under the prefix, as (key relative to the prefix, local file), in key order."""
        path = self.path_for(uri)
        if path.is_file():
            return [(path.name, path)] if _visible(Path(path.name)) else []
        if path.is_dir():
            return [
                (str(file.relative_to(path)), file)
                for file in sorted(path.rglob("*"))
                if file.is_file() and _visible(file.relative_to(path))
            ]
        return []

    def download(self, uri: str, destination: Path) -> list[Path]:
        """Copy the objects under `uri` into the folder `destination`; an empty prefix is an error."""
        found = self.objects(uri)
        if not found:
            raise ObjectStoreError(f"no S3 objects found under {uri}")
        copied = []
        for relative, source in found:
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            copied.append(target)
        return copied

    def upload(self, source: Path, uri: str) -> str:
        """Copy a file or the contents of a folder to `uri` (a key, or a prefix for a folder); each file
        lands atomically."""
        target = self.path_for(uri)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True, copy_function=copy_file_atomically)
        else:
            copy_file_atomically(source, target)
        return uri

    def put_text(self, uri: str, text: str) -> str:
        """Write `text` to the object at `uri` atomically; return `uri`."""
        replace_atomically(self.path_for(uri), lambda temporary: temporary.write_text(text))
        return uri

    def read_text(self, uri: str) -> str:
        """The text of the object at `uri`; a missing object is an `ObjectStoreError`."""
        path = self.path_for(uri)
        if not path.is_file():
            raise ObjectStoreError(f"no S3 object {uri}")
        return path.read_text()

    def delete(self, uri: str) -> None:
        """Remove the object, or every object under the prefix, at `uri`; nothing there is not an error."""
        path = self.path_for(uri)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
