"""The names of the local work folder's parts that more than one runner module opens.

`<work>/registry.sqlite` is the local model registry and `<work>/s3/` the local object store (the
`s3://bucket/key` objects of a run, at `<work>/s3/bucket/key`).
"""

from __future__ import annotations

REGISTRY_FILE = "registry.sqlite"
STORE_FOLDER = "s3"
