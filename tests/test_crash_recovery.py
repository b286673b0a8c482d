"""A job accepted before the server is killed with SIGKILL completes after a restart."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from kinema.runtime import Runtime
from tests.support import ServerProcess, data_uri, free_port, make_settings, pattern_image, probe


def test_kill_9_mid_job_then_restart_completes_the_job(tmp_path: Path):
    settings = make_settings(tmp_path, lease_s=2.0, heartbeat_s=0.5)
    runtime = Runtime.build(settings, workers=0)
    _, secret = runtime.keys.create("crash")
    runtime.close()
    env = {
        "KINEMA_DATA_DIR": str(settings.data_dir),
        "KINEMA_SIGNING_SECRET": "test-secret",
        "KINEMA_LEASE_S": "2",
        "KINEMA_HEARTBEAT_S": "0.5",
        "KINEMA_POLL_S": "0.1",
        "KINEMA_PROGRESS_INTERVAL_S": "0.1",
    }
    headers = {"Authorization": f"Bearer {secret}"}
    port = free_port()
    server = ServerProcess(env, port, tmp_path / "server.log")
    try:
        body = {
            "model": "google/veo-3.1-i2v",
            "prompt": "push in slowly",
            "image_url": data_uri(pattern_image(640, 360)),
            "duration": 8,
            "resolution": "1080p",
        }
        created = httpx.post(
            server.url + "/v2/video/generations", json=body, headers=headers, timeout=30
        )
        assert created.status_code == 200, created.text
        generation_id = created.json()["id"]
        params = {"generation_id": generation_id}
        deadline = time.monotonic() + 60
        while True:  # wait until the job is visibly being rendered
            status = httpx.get(
                server.url + "/v2/video/generations", params=params, headers=headers
            ).json()
            if status["status"] == "generating" and status["progress"] > 0:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        server.kill()

        server = ServerProcess(env, port, tmp_path / "server.log")
        deadline = time.monotonic() + 180
        while True:
            status = httpx.get(
                server.url + "/v2/video/generations", params=params, headers=headers
            ).json()
            if status["status"] not in ("queued", "generating"):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status["status"] == "completed", status
        video = httpx.get(status["video"]["url"], timeout=30)
        facts = probe(video.content)
        assert (facts.width, facts.height, facts.frames) == (1920, 1080, 192)
        assert facts.audio_codec == "aac"
    finally:
        server.stop()

    check = Runtime.build(settings, workers=0)
    try:
        job = check.store.get_any(status["id"].split(":")[0].replace("-", ""))
        assert job.attempt == 2  # the killed attempt, then the one that finished
        files = sorted(p.name for p in (settings.data_dir / "files" / "jobs" / job.id).iterdir())
        assert [f for f in files if f.startswith("video")] == ["video-2.mp4"]
    finally:
        check.close()


def test_kill_9_mid_extension_then_restart_completes_the_joined_video(tmp_path: Path):
    settings = make_settings(tmp_path, lease_s=2.0, heartbeat_s=0.5)
    runtime = Runtime.build(settings, workers=0)
    _, secret = runtime.keys.create("crash")
    runtime.close()
    env = {
        "KINEMA_DATA_DIR": str(settings.data_dir),
        "KINEMA_SIGNING_SECRET": "test-secret",
        "KINEMA_LEASE_S": "2",
        "KINEMA_HEARTBEAT_S": "0.5",
        "KINEMA_POLL_S": "0.1",
        "KINEMA_PROGRESS_INTERVAL_S": "0.1",
    }
    headers = {"x-goog-api-key": secret}
    model = "veo-3.1-fast-generate-preview"
    port = free_port()
    server = ServerProcess(env, port, tmp_path / "server.log")

    def operation(name: str, *, until: str, timeout_s: float = 120) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            body = httpx.get(f"{server.url}/v1beta/{name}", headers=headers).json()
            progress = body.get("metadata", {}).get("progressPercent", 0)
            if body.get("done") or (until == "rendering" and progress > 0):
                return body
            assert time.monotonic() < deadline, body
            time.sleep(0.05)

    def predict(instance: dict, seconds: int = 8) -> str:
        parameters = {"durationSeconds": seconds, "resolution": "1080p"}
        body = {"instances": [instance], "parameters": parameters}
        created = httpx.post(
            f"{server.url}/v1beta/models/{model}:predictLongRunning",
            json=body,
            headers=headers,
            timeout=60,
        )
        assert created.status_code == 200, created.text
        return str(created.json()["name"])

    try:
        image = data_uri(pattern_image(640, 360)).split(",", 1)[1]
        source = operation(
            predict({"prompt": "pan left", "image": {"bytesBase64Encoded": image}}), until="done"
        )
        (sample,) = source["response"]["generateVideoResponse"]["generatedSamples"]
        name = predict({"prompt": "", "video": {"uri": sample["video"]["uri"]}}, seconds=7)
        operation(name, until="rendering")
        server.kill()

        server = ServerProcess(env, port, tmp_path / "server.log")
        extended = operation(name, until="done", timeout_s=240)
        (joined,) = extended["response"]["generateVideoResponse"]["generatedSamples"]
        video = httpx.get(joined["video"]["uri"], headers=headers, timeout=60)
        assert video.status_code == 200
        facts = probe(video.content)
        assert (facts.width, facts.height, facts.frames) == (1920, 1080, 360)  # 8 s + 7 s
        assert facts.audio_duration_s is not None and facts.audio_duration_s > 14.9
    finally:
        server.stop()

    check = Runtime.build(settings, workers=0)
    try:
        job = check.store.get_any(name.rsplit("/", 1)[1])
        assert job.attempt == 2  # the killed attempt, then the one that finished
        files = sorted(p.name for p in (settings.data_dir / "files" / "jobs" / job.id).iterdir())
        assert [f for f in files if f.startswith("video")] == ["video-2.mp4"]
        assert "input-video.mp4" in files
    finally:
        check.close()
