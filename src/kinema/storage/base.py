"""What the rest of kinema needs from a blob store: put, open, delete by key."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol


class Storage(Protocol):
    def put_file(self, key: str, source: Path) -> int:
        """Move ``source`` into the store under ``key``; return its size in bytes."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        """``key``'s bytes as a file to read in chunks (``NotFound`` if there is none)."""
        ...

    def delete(self, key: str) -> None: ...

    def copy(self, source: str, target: str) -> None:
        """Write a copy of ``source`` at ``target`` (inside the store: a remote store
        copies server-side, the bytes never pass through kinema)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A filesystem path to serve ``key`` from, or None when the store is remote."""
        ...

    def download_url(self, key: str, *, ttl_s: int) -> str | None:
        """A URL the client can fetch ``key`` from directly for ``ttl_s`` seconds (a remote
        store's presigned link), or None: served from ``local_path`` or gone."""
        ...

    def object_uri(self, key: str) -> str | None:
        """The object's URI in its bucket (``s3://bucket/key``), or None for a local store."""
        ...

    def key_of_uri(self, uri: str) -> str | None:
        """The key ``uri`` names in this store (``object_uri``'s inverse), or None for a
        URI elsewhere and for every URI of a local store."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with ``prefix``; return how many."""
        ...

    def scratch_dir(self) -> Path:
        """A local directory on the same filesystem, for files being written."""
        ...
