"""Per-key quotas: refused with 429 in each dialect's envelope, naming the quota."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kinema.errors import InvalidRequest
from tests.conftest import reset_postgres
from tests.fixture_engines import model_toml
from tests.support import LiveServer, live_server, make_settings

CATALOG = (
    """
[engines.slow]
kind = "python"
class = "tests.fixture_engines:SlowEngine"
fps = 8
frame_s = 0.5
"""
    + model_toml("slow", engine="slow", dialect="aimlapi", durations=(1, 4, 8), default_duration=4)
    + model_toml("slow-v1", engine="slow", dialect="v1", durations=(1, 4, 8), default_duration=4)
    + model_toml("slow-unified", engine="slow", dialect="unified", durations=(4,))
    + model_toml("slow-openai", engine="slow", dialect="openai", durations=(4,))
    + model_toml("slow-gemini", engine="slow", dialect="gemini", durations=(4,))
)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    with live_server(make_settings(tmp_path, catalog_path=catalog), workers=1) as server:
        yield server


def key_id(live: LiveServer, plaintext: str) -> str:
    key = live.runtime.keys.verify(plaintext)
    assert key is not None
    return key.id


def test_active_jobs_quota_refuses_the_next_create_with_429_naming_it(live: LiveServer):
    live.runtime.keys.set_quota(
        key_id(live, live.api_key), max_active_jobs=1, max_video_s_per_day=None
    )
    with live.client() as client:
        first = client.post("/v2/video/generations", json={"model": "slow", "prompt": "a"})
        assert first.status_code == 200, first.text
        second = client.post("/v2/video/generations", json={"model": "slow", "prompt": "b"})
        assert second.status_code == 429
        assert "max_active_jobs" in second.json()["message"]
        assert int(second.headers["Retry-After"]) >= 1
        # Cancelling the first frees the slot.
        generation_id = first.json()["id"]
        job_id = generation_id.split(":")[0].replace("-", "")
        live.runtime.service.cancel(key_id(live, live.api_key), job_id)
        third = client.post("/v2/video/generations", json={"model": "slow", "prompt": "c"})
        assert third.status_code == 200, third.text


def test_daily_video_seconds_quota_counts_requested_seconds(live: LiveServer):
    live.runtime.keys.set_quota(
        key_id(live, live.api_key), max_active_jobs=None, max_video_s_per_day=9
    )
    with live.client() as client:
        ok = client.post(
            "/v1/video/generations", json={"model": "slow-v1", "prompt": "a", "seconds": 8}
        )
        assert ok.status_code == 200, ok.text
        refused = client.post(
            "/v1/video/generations", json={"model": "slow-v1", "prompt": "b", "seconds": 4}
        )
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_error"
        assert error["code"] == "quota_exceeded"
        assert "max_video_s_per_day" in error["message"] and "used 8" in error["message"]
        # A retry-after close to a day: the 8 seconds only age out in 24 hours.
        assert int(refused.headers["Retry-After"]) > 23 * 3600
        fits = client.post(
            "/v1/video/generations", json={"model": "slow-v1", "prompt": "c", "seconds": 1}
        )
        assert fits.status_code == 200, fits.text


def test_quota_429_in_the_unified_openai_and_gemini_envelopes(live: LiveServer):
    live.runtime.keys.set_quota(
        key_id(live, live.api_key), max_active_jobs=0, max_video_s_per_day=None
    )
    with live.client() as client:
        unified = client.post(
            "/v1/videos/generations", json={"model": "slow-unified", "prompt": "a"}
        )
        assert unified.status_code == 429
        assert unified.json()["error"]["type"] == "rate_limit_error"
        assert "max_active_jobs" in unified.json()["error"]["message"]
        openai = client.post("/v1/videos", json={"model": "slow-openai", "prompt": "a"})
        assert openai.status_code == 429
        assert openai.json()["error"]["type"] == "rate_limit_exceeded"
        assert openai.json()["error"]["code"] == "quota_exceeded"
        assert "max_active_jobs" in openai.json()["error"]["message"]
        gemini = client.post(
            "/v1beta/models/slow-gemini:predictLongRunning",
            json={"instances": [{"prompt": "a"}]},
            headers={"x-goog-api-key": live.api_key},
        )
        assert gemini.status_code == 429
        assert gemini.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert "max_active_jobs" in gemini.json()["error"]["message"]
        # Validation speaks before any quota: a bad request is still a 400.
        bad = client.post("/v1/videos/generations", json={"model": "nope", "prompt": "a"})
        assert bad.status_code == 400


def test_idempotent_retry_of_an_accepted_create_is_answered_despite_the_quota(live: LiveServer):
    live.runtime.keys.set_quota(
        key_id(live, live.api_key), max_active_jobs=1, max_video_s_per_day=None
    )
    body = {"model": "slow", "prompt": "same"}
    headers = {"Idempotency-Key": "k-1"}
    with live.client() as client:
        first = client.post("/v2/video/generations", json=body, headers=headers)
        again = client.post("/v2/video/generations", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]


def test_a_key_without_quotas_is_not_limited_and_quotas_can_be_lifted(live: LiveServer):
    owner = key_id(live, live.api_key)
    key = live.runtime.keys.set_quota(owner, max_active_jobs=0, max_video_s_per_day=5)
    assert (key.max_active_jobs, key.max_video_s_per_day) == (0, 5)
    key = live.runtime.keys.set_quota(owner, max_active_jobs=None, max_video_s_per_day=None)
    assert (key.max_active_jobs, key.max_video_s_per_day) == (None, None)
    with live.client() as client:
        for _ in range(3):
            response = client.post("/v2/video/generations", json={"model": "slow", "prompt": "x"})
            assert response.status_code == 200


def test_negative_quota_is_refused(live: LiveServer):
    with pytest.raises(InvalidRequest, match="max_active_jobs"):
        live.runtime.keys.set_quota(
            key_id(live, live.api_key), max_active_jobs=-1, max_video_s_per_day=None
        )


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_creates_racing_for_the_last_slot_admit_exactly_one(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    overrides: dict[str, object] = {"catalog_path": catalog}
    if database == "postgresql":
        url = request.getfixturevalue("postgres_url")
        reset_postgres(url)
        overrides["database_url"] = url
    with live_server(make_settings(tmp_path, **overrides), workers=0) as live:
        live.runtime.keys.set_quota(
            key_id(live, live.api_key), max_active_jobs=1, max_video_s_per_day=None
        )
        barrier = threading.Barrier(8)

        def create(i: int) -> int:
            with live.client() as client:
                barrier.wait()
                body = {"model": "slow-v1", "prompt": f"racer {i}", "seconds": 1}
                return client.post("/v1/video/generations", json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = sorted(pool.map(create, range(8)))
    assert statuses == [200] + [429] * 7
