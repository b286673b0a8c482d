"""The user's own reference client (seed 001's Python example) against a running kinema.

The code below is the seed's, unchanged but for the base URL, the key and the image (a
local file sent as base64, which the API accepts). Its ``time`` is a name of this test's
own scope: real ``time.time``, and a ``time.sleep`` that waits at most half a second, so
the loop's "Checking again in 10 seconds" does not idle the suite for 10 s per poll.
Nothing outside this function is patched: other threads (the server, the worker) keep
the real ``time.sleep``.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time as real_time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import missing_tool
from tests.support import LiveServer, live_server, make_settings, poll_until_done, probe

SAMPLE = Path(__file__).parents[1] / "src" / "kinema" / "assets" / "sample.jpg"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(make_settings(tmp_path), workers=1) as live:
        yield live


class ShortSleeps:
    """The ``time`` the seed's code sees: the real clock, with sleeps of at most 0.5 s."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def time(self) -> float:
        return real_time.time()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        real_time.sleep(min(seconds, 0.5))


def test_seed_polling_loop_gets_a_completed_video(server: LiveServer):
    aimlapi_key = server.api_key
    base_url = server.url + "/v2"
    image = "data:image/jpeg;base64," + base64.b64encode(SAMPLE.read_bytes()).decode()
    time = ShortSleeps()

    # --- seed 001, verbatim but for the names above ---
    def generate_video():
        url = f"{base_url}/video/generations"
        headers = {
            "Authorization": f"Bearer {aimlapi_key}",
        }
        data = {
            "model": "google/veo-3.1-i2v-fast",
            "prompt": "The woman puts on glasses with her hands and then sighs and says slowly: 'Well...'.",
            "image_url": image,
        }
        response = requests.post(url, json=data, headers=headers)
        if response.status_code >= 400:
            print(f"Error: {response.status_code} - {response.text}")
        else:
            response_data = response.json()
            return response_data

    def get_video(gen_id):
        url = f"{base_url}/video/generations"
        params = {
            "generation_id": gen_id,
        }
        headers = {
            "Authorization": f"Bearer {aimlapi_key}",
            "Content-Type": "application/json"
        }
        response = requests.get(url, params=params, headers=headers)
        return response.json()

    def main():
        gen_response = generate_video()
        gen_id = gen_response.get("id")
        print("Generation ID:  ", gen_id)
        if gen_id:
            start_time = time.time()
            timeout = 1000
            while time.time() - start_time < timeout:
                response_data = get_video(gen_id)
                if response_data is None:
                    print("Error: No response from API")
                    break
                status = response_data.get("status")
                print("Status:", status)
                if status == "waiting" or status == "active" or  status == "queued" or status == "generating":
                    print("Still waiting... Checking again in 10 seconds.")
                    time.sleep(10)
                else:
                    print("Processing complete:/n", response_data)
                    return response_data
            print("Timeout reached. Stopping.")
            return None
    # --- end of seed ---

    result = main()
    assert time.sleeps and set(time.sleeps) == {10}, "the seed's own loop did the polling"
    assert result is not None and result["status"] == "completed", result
    video = requests.get(result["video"]["url"])
    facts = probe(video.content)
    # The model's defaults: 8 s, 1080p, 16:9, with audio.
    assert (facts.width, facts.height) == (1920, 1080)
    assert facts.frames == 8 * 24
    assert facts.duration_s == pytest.approx(8.0, abs=1 / 24)
    assert facts.audio_codec == "aac"


SEED_002_NODE = Path(__file__).parent / "seeds" / "seed002_example.js"


def test_seed_002_node_example_completes_with_its_string_duration(server: LiveServer, tmp_path: Path):
    """Seed 002's Node.js client sends ``duration: "5"`` to a model that makes 4, 6 or 8
    second videos; it is made as 6 s (the next longer one) and the create response says so.

    The script runs unchanged but for the base URL, the key, the image (a local file as a
    data URI, which the API accepts) and ``https`` -> ``http`` (loopback has no TLS)."""
    node = shutil.which("node")
    if node is None:
        missing_tool("node is not installed: the seed's Node.js example needs it")
    image = "data:image/jpeg;base64," + base64.b64encode(SAMPLE.read_bytes()).decode()
    source = SEED_002_NODE.read_text()
    for seed_text, ours in [
        ('require("https")', 'require("http")'),
        ('"https://api.aimlapi.com/v2"', json.dumps(server.url + "/v2")),
        ('"<YOUR_AIMLAPI_KEY>"', json.dumps(server.api_key)),
        ('"https://s2-111386.kwimgs.com/bs2/mmu-aiplatform-temp/kling/20240620/1.jpeg"', json.dumps(image)),
    ]:
        assert seed_text in source
        source = source.replace(seed_text, ours)
    script = tmp_path / "example.js"
    script.write_text(source)
    done = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Failed to start generation" not in output
    assert "Status: completed" in output and "Processing complete" in output, output

    [job] = server.runtime.store.list(server.runtime.keys.verify(server.api_key).id)  # type: ignore[union-attr]
    assert job.request.duration_s == 6
    [adjusted] = job.request.adjustments
    assert (adjusted["field"], adjusted["requested"], adjusted["used"]) == ("duration", "5", 6)
    with server.client() as client:
        created = client.post(
            "/v2/generate/video/google/generation",
            json={"model": "google/veo-3.0-i2v-fast", "prompt": "x", "image_url": image, "duration": "5"},
        )
        assert created.status_code == 201, created.text
        assert created.json()["meta"]["adjustments"] == [adjusted]
        done_body = poll_until_done(client, created.json()["id"])
    assert done_body["video"]["duration"] == pytest.approx(6.0, abs=1 / 24)
    assert done_body["meta"]["usage"] == {
        "seconds": done_body["video"]["duration"], "tokens_used": 90000, "engine": "motion"
    }
