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
import time as real_time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import LiveServer, live_server, make_settings, probe

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
