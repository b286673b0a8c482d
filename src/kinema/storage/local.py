"""Blob storage in a local directory: the embedded default."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from kinema.errors import NotFound


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's root (``..``, absolute, backslashes)."""
    path = PurePosixPath(key)
    if (
        not key
        or path.is_absolute()
        or "\\" in key
        or any(p in ("", ".", "..") for p in path.parts)
    ):
        raise NotFound(f"no such file: {key!r}")
    return key


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".scratch").mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_file(self, key: str, source: Path) -> int:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        return target.stat().st_size

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.scratch_dir(), delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, target)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no such file: {key!r}") from None

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise NotFound(f"no such file: {key!r}") from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def copy(self, source: str, target: str) -> None:
        path = self._path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.scratch_dir(), delete=False) as tmp:
            try:
                shutil.copyfile(self._path(source), tmp.name)
            except FileNotFoundError:
                Path(tmp.name).unlink()
                raise NotFound(f"no such file: {source!r}") from None
        os.replace(tmp.name, path)

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def download_url(self, key: str, *, ttl_s: int) -> str | None:
        return None  # served by kinema itself, from local_path

    def object_uri(self, key: str) -> str | None:
        return None

    def key_of_uri(self, uri: str) -> str | None:
        return None

    def delete_prefix(self, prefix: str) -> int:
        """Remove the directory ``prefix`` (a key ending in ``/``) and all it holds."""
        base = self._path(prefix.rstrip("/"))
        if not base.is_dir():
            return 0
        count = sum(1 for p in base.rglob("*") if p.is_file())
        shutil.rmtree(base, ignore_errors=True)
        return count

    def scratch_dir(self) -> Path:
        return self.root / ".scratch"
