"""Blob storage in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, ...), for many machines.

Chosen by ``KINEMA_STORAGE_URL=s3://bucket/prefix?endpoint_url=...&region=...``. Credentials
come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, a profile,
an instance role). Downloads never pass through kinema: the signed ``/files`` link answers
with a redirect to a short-lived presigned URL of the object. Files being written live in
a local scratch directory until ``put_file`` uploads them.

Connection failures, timeouts and the store's 5xx/throttling answers raise
``Unavailable`` (a 503 to a client; a worker waits for the store to come back). Its
message says only that: botocore's own names the endpoint, which is logged instead.
"""

from __future__ import annotations

import builtins
import logging
import mimetypes
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast
from urllib.parse import parse_qs, urlsplit

from kinema.errors import NotFound, Unavailable
from kinema.storage.local import check_key

_RETRYABLE_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "Throttling"}
)
_DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys
_CONNECT_TIMEOUT_S = 5.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/"
    endpoint_url: str | None
    region: str | None
    addressing_style: str | None
    # Where clients reach the store when that differs from where kinema does (a container
    # network's name, a host port): presigned download links are signed for this endpoint.
    public_endpoint_url: str | None = None

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """Read ``s3://bucket[/prefix][?endpoint_url=...&region=...&addressing_style=...
        &public_endpoint_url=...]``."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"storage URL {url!r}: expected s3://bucket[/prefix]")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {
            "endpoint_url", "region", "addressing_style", "public_endpoint_url"
        }  # fmt: skip
        if unknown:
            raise ValueError(f"storage URL {url!r}: unknown parameters {sorted(unknown)}")
        prefix = parts.path.strip("/")
        return cls(
            bucket=parts.netloc,
            prefix=f"{prefix}/" if prefix else "",
            endpoint_url=query.get("endpoint_url"),
            region=query.get("region"),
            addressing_style=query.get("addressing_style"),
            public_endpoint_url=query.get("public_endpoint_url"),
        )


class S3Storage:
    def __init__(self, location: S3Location, scratch: Path, *, client: Any | None = None) -> None:
        self.location = location
        self._scratch = Path(scratch)
        self._scratch.mkdir(parents=True, exist_ok=True)
        self._client = client or _client_for(location)
        # Signing is local: a second client only puts the public host into the links.
        public = location.public_endpoint_url
        self._signer = (
            _client_for(replace(location, endpoint_url=public)) if public else self._client
        )

    @classmethod
    def from_url(cls, url: str, scratch: Path) -> S3Storage:
        return cls(S3Location.parse(url), scratch)

    def _key(self, key: str) -> str:
        return self.location.prefix + check_key(key)

    def put_file(self, key: str, source: Path) -> int:
        size = source.stat().st_size
        extra = _content_type(key)
        with _translated():
            self._client.upload_file(
                str(source), self.location.bucket, self._key(key), ExtraArgs=extra
            )
        source.unlink(missing_ok=True)
        return size

    def put_bytes(self, key: str, data: bytes) -> None:
        with _translated():
            self._client.put_object(
                Bucket=self.location.bucket, Key=self._key(key), Body=data, **_content_type(key)
            )

    def get_bytes(self, key: str) -> bytes:
        with _translated(key):
            answer = self._client.get_object(Bucket=self.location.bucket, Key=self._key(key))
            body: bytes = answer["Body"].read()
        return body

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        with _translated(key):
            answer = self._client.get_object(Bucket=self.location.bucket, Key=self._key(key))
        body = answer["Body"]
        try:
            with _translated(key):
                yield cast(BinaryIO, body)
        finally:
            body.close()

    def delete(self, key: str) -> None:
        with _translated():
            self._client.delete_object(Bucket=self.location.bucket, Key=self._key(key))

    def copy(self, source: str, target: str) -> None:
        """A server-side ``CopyObject``: the store copies the object (and its content
        type) within the bucket."""
        bucket = self.location.bucket
        with _translated(source):
            self._client.copy_object(
                Bucket=bucket,
                Key=self._key(target),
                CopySource={"Bucket": bucket, "Key": self._key(source)},
            )

    def local_path(self, key: str) -> Path | None:
        return None

    def download_url(self, key: str, *, ttl_s: int) -> str | None:
        """A presigned GET URL for ``key`` valid ``ttl_s`` seconds; None if it is gone."""
        full = self._key(key)
        try:
            with _translated(key):
                self._client.head_object(Bucket=self.location.bucket, Key=full)
        except NotFound:
            return None
        name = PurePosixPath(key).name
        url: str = self._signer.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.location.bucket,
                "Key": full,
                "ResponseContentDisposition": f'attachment; filename="{name}"',
            },
            ExpiresIn=ttl_s,
        )
        return url

    def object_uri(self, key: str) -> str | None:
        return f"s3://{self.location.bucket}/{self.location.prefix}{key}"

    def key_of_uri(self, uri: str) -> str | None:
        base = f"s3://{self.location.bucket}/{self.location.prefix}"
        return uri.removeprefix(base) if uri.startswith(base) else None

    def delete_prefix(self, prefix: str) -> int:
        full = self._key(prefix.rstrip("/")) + "/"
        count = 0
        for batch in _chunks(self._list(full), _DELETE_BATCH):
            with _translated():
                self._client.delete_objects(
                    Bucket=self.location.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            count += len(batch)
        return count

    def keys(self, prefix: str = "") -> builtins.list[str]:
        """Every key under ``prefix`` (relative to the store's own prefix)."""
        own = len(self.location.prefix)
        return [k[own:] for k in self._list(self.location.prefix + prefix)]

    def scratch_dir(self) -> Path:
        return self._scratch

    def _list(self, prefix: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        with _translated():
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
                for item in page.get("Contents", ()):
                    yield item["Key"]


def _client_for(location: S3Location) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=_CONNECT_TIMEOUT_S,  # botocore's 60 s would hold a request that long
        s3={"addressing_style": location.addressing_style or "auto"},
        signature_version="s3v4",
    )
    return boto3.client(
        "s3", endpoint_url=location.endpoint_url, region_name=location.region, config=config
    )


def _content_type(key: str) -> dict[str, Any]:
    kind = mimetypes.guess_type(key)[0]
    return {"ContentType": kind} if kind else {}


@contextmanager
def _translated(key: str | None = None) -> Iterator[None]:
    """Map botocore's errors to kinema's: missing -> NotFound, passing -> Unavailable."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in ("NoSuchKey", "404", "NotFound"):
            raise NotFound(f"no such file: {key!r}") from None
        if status >= 500 or code in _RETRYABLE_CODES:
            log.warning("object storage answered %s for %r", code or status, key)
            raise Unavailable(f"object storage is unavailable ({code or status})") from error
        raise
    except BotoCoreError as error:  # connection refused, timeouts, ...
        log.warning("object storage unreachable (%r): %s", key, error)
        raise Unavailable("object storage is unreachable") from error


def _chunks(items: Iterator[str], size: int) -> Iterator[builtins.list[str]]:
    batch: builtins.list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
