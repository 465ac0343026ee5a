"""A local stand-in for S3: `s3://bucket/key` is the file `<root>/bucket/key`.

Reads follow SageMaker's S3Prefix semantics: a URI names every object whose key starts with it, so
`s3://b/data/` and `s3://b/data` both bring the folder, and `s3://b/data/x.csv` brings one file.
"""

from __future__ import annotations

import shutil
from pathlib import Path


class ObjectStoreError(LookupError):
    """An S3 URI is malformed or names no object."""


class ObjectStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, uri: str) -> Path:
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
            return [(path.name, path)]
        if path.is_dir():
            return [(str(file.relative_to(path)), file) for file in sorted(path.rglob("*")) if file.is_file()]
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
        """Copy a file or the contents of a folder to `uri` (a key, or a prefix for a folder)."""
        target = self.path_for(uri)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        return uri

    def put_text(self, uri: str, text: str) -> str:
        target = self.path_for(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return uri

    def read_text(self, uri: str) -> str:
        path = self.path_for(uri)
        if not path.is_file():
            raise ObjectStoreError(f"no S3 object {uri}")
        return path.read_text()

    def delete(self, uri: str) -> None:
        path = self.path_for(uri)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
