"""The S3 store against a real S3-compatible HTTP server (moto) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kinema.errors import NotFound, TransientError
from kinema.storage import LocalStorage, open_storage
from kinema.storage.s3 import S3Location, S3Storage
from tests.scale_support import S3Server, moto_server
from tests.support import free_port, live_server, make_settings


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_server() as server:
        server.create_bucket("videos")
        yield server


@pytest.fixture
def store(s3: S3Server, tmp_path: Path, request: pytest.FixtureRequest) -> S3Storage:
    built = open_storage(s3.url("videos", f"t-{request.node.name}"), tmp_path, tmp_path / "s")
    assert isinstance(built, S3Storage)
    return built


def test_url_names_bucket_prefix_endpoint_and_region():
    location = S3Location.parse(
        "s3://media/kinema/prod?endpoint_url=http://127.0.0.1:9000&region=eu-west-1"
    )
    assert location.bucket == "media"
    assert location.prefix == "kinema/prod/"
    assert location.endpoint_url == "http://127.0.0.1:9000"
    assert location.region == "eu-west-1"
    assert S3Location.parse("s3://media").prefix == ""
    with pytest.raises(ValueError, match="unknown parameters"):
        S3Location.parse("s3://media?endpoint=x")


def test_no_url_means_the_local_directory(tmp_path: Path):
    assert isinstance(open_storage(None, tmp_path / "files", tmp_path / "s"), LocalStorage)


def test_bytes_and_files_round_trip_under_the_prefix(store: S3Storage, s3: S3Server):
    store.put_bytes("jobs/a/input-first.png", b"png bytes")
    source = store.scratch_dir() / "a.mp4"
    source.write_bytes(b"x" * 1000)

    assert store.put_file("jobs/a/video-1.mp4", source) == 1000
    assert not source.exists()  # moved, like the local store does
    assert store.get_bytes("jobs/a/input-first.png") == b"png bytes"
    assert store.local_path("jobs/a/video-1.mp4") is None
    assert sorted(store.keys("jobs/a/")) == ["jobs/a/input-first.png", "jobs/a/video-1.mp4"]
    head = s3.client().head_object(
        Bucket="videos", Key=store.location.prefix + "jobs/a/video-1.mp4"
    )
    assert head["ContentType"] == "video/mp4"


def test_missing_key_is_not_found(store: S3Storage):
    with pytest.raises(NotFound):
        store.get_bytes("jobs/none/video-1.mp4")
    assert store.download_url("jobs/none/video-1.mp4", ttl_s=60) is None


def test_delete_prefix_removes_only_that_job(store: S3Storage):
    for i in range(3):
        store.put_bytes(f"jobs/a/f{i}", b"1")
    store.put_bytes("jobs/ab/f", b"1")  # shares the string prefix, not the directory

    assert store.delete_prefix("jobs/a/") == 3
    assert store.keys("jobs/") == ["jobs/ab/f"]
    store.delete("jobs/ab/f")
    assert store.keys("jobs/") == []


def test_copy_is_made_in_the_bucket_and_uris_name_keys(store: S3Storage, s3: S3Server):
    store.put_bytes("jobs/c/video-1.mp4", b"mp4 bytes")
    store.copy("jobs/c/video-1.mp4", "out/c/sample_0.mp4")
    store.delete_prefix("jobs/c/")

    full = store.location.prefix + "out/c/sample_0.mp4"
    copy = s3.client().get_object(Bucket="videos", Key=full)
    assert copy["Body"].read() == b"mp4 bytes" and copy["ContentType"] == "video/mp4"
    uri = store.object_uri("out/c/sample_0.mp4")
    assert uri == f"s3://videos/{full}"
    assert store.key_of_uri(uri) == "out/c/sample_0.mp4"
    assert store.key_of_uri("s3://videos/elsewhere/x.mp4") is None
    assert store.key_of_uri("s3://other/" + full) is None
    with pytest.raises(NotFound):
        store.copy("jobs/none/video-1.mp4", "out/none.mp4")


def test_the_local_store_copies_too_and_has_no_uris(tmp_path: Path):
    local = LocalStorage(tmp_path / "files")
    local.put_bytes("jobs/c/video-1.mp4", b"mp4 bytes")
    local.copy("jobs/c/video-1.mp4", "out/c/sample_0.mp4")
    assert local.get_bytes("out/c/sample_0.mp4") == b"mp4 bytes"
    assert local.key_of_uri("s3://videos/out/c/sample_0.mp4") is None
    with pytest.raises(NotFound):
        local.copy("jobs/none/video-1.mp4", "out/none.mp4")
    assert list(local.scratch_dir().iterdir()) == []


def test_presigned_url_serves_the_bytes_with_ranges(store: S3Storage):
    store.put_bytes("jobs/b/video-1.mp4", bytes(range(256)) * 4)
    url = store.download_url("jobs/b/video-1.mp4", ttl_s=60)
    assert url is not None

    whole = httpx.get(url)
    part = httpx.get(url, headers={"Range": "bytes=10-19"})

    assert whole.status_code == 200 and len(whole.content) == 1024
    assert part.status_code == 206 and part.content == bytes(range(10, 20))


def test_keys_that_escape_the_prefix_are_refused(store: S3Storage):
    with pytest.raises(NotFound):
        store.put_bytes("../other/x", b"1")


def test_unreachable_store_is_a_transient_error(tmp_path: Path):
    dead = f"s3://videos?endpoint_url=http://127.0.0.1:{free_port()}&region=us-east-1"
    store = open_storage(dead, tmp_path, tmp_path / "s")
    with pytest.raises(TransientError):
        store.put_bytes("jobs/a/x", b"1")


def test_signed_link_redirects_to_the_object(s3: S3Server, tmp_path: Path):
    settings = make_settings(tmp_path, storage_url=s3.url("videos", "served"))
    with live_server(settings, workers=0) as server:
        server.runtime.storage.put_bytes("jobs/c/video-1.mp4", b"video!")
        path = server.runtime.signer.path_for("jobs/c/video-1.mp4")
        gone = server.runtime.signer.path_for("jobs/c/video-2.mp4")

        redirect = httpx.get(server.url + path)
        followed = httpx.get(server.url + path, follow_redirects=True)
        missing = httpx.get(server.url + gone)
        tampered = httpx.get(server.url + path.replace("video-1", "video-2"))

    assert redirect.status_code == 307
    assert redirect.headers["location"].startswith(s3.endpoint)
    assert followed.status_code == 200 and followed.content == b"video!"
    assert missing.status_code == 404
    assert tampered.status_code == 403


def test_links_are_signed_for_the_public_endpoint_when_one_is_given(s3: S3Server, tmp_path: Path):
    # kinema reaches the store as 127.0.0.1; clients know it as localhost (a container
    # network's name against a published port, in a real deployment).
    public = s3.endpoint.replace("127.0.0.1", "localhost")
    url = s3.url("videos", "public") + f"&public_endpoint_url={public}"
    store = open_storage(url, tmp_path, tmp_path / "s")
    assert isinstance(store, S3Storage)
    store.put_bytes("jobs/c/video-1.mp4", b"a video")
    link = store.download_url("jobs/c/video-1.mp4", ttl_s=60)
    assert link is not None and link.startswith(public + "/")
    fetched = httpx.get(link)
    assert fetched.status_code == 200 and fetched.content == b"a video"
