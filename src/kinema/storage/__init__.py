"""Where videos and input images live: a local directory by default, or an S3 bucket."""

from pathlib import Path

from kinema.storage.base import Storage
from kinema.storage.local import LocalStorage
from kinema.storage.signing import LinkSigner


def open_storage(url: str | None, local_root: Path, scratch: Path) -> Storage:
    """The store named by ``url`` (``s3://...``), or the local directory when it is unset.

    ``scratch`` is where a remote store keeps files being written; boto3 is imported only
    for an S3 URL.
    """
    if not url:
        return LocalStorage(local_root)
    if url.startswith("s3://"):
        from kinema.storage.s3 import S3Storage

        return S3Storage.from_url(url, scratch)
    if url.startswith("file://"):
        return LocalStorage(Path(url.removeprefix("file://")))
    raise ValueError(f"unsupported storage URL {url!r}: use s3://bucket/prefix or file:///dir")


__all__ = ["LinkSigner", "LocalStorage", "Storage", "open_storage"]
