"""Seed 001's Python client (tests/seeds/seed001_example.py) against a running kinema.

The client runs unchanged but for its base URL, key and image (the shipped sample picture
as a data URI, which the API accepts); then the video it was given is downloaded and
checked. Usage: run_seed_client.py BASE_URL API_KEY
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "seeds" / "seed001_example.py"
SAMPLE = ROOT / "src" / "kinema" / "assets" / "sample.jpg"
SEED_IMAGE = '"https://s2-111386.kwimgs.com/bs2/mmu-aiplatform-temp/kling/20240620/1.jpeg"'


def main(base_url: str, api_key: str) -> None:
    image = "data:image/jpeg;base64," + base64.b64encode(SAMPLE.read_bytes()).decode()
    source = SEED.read_text()
    for seed_text, ours in [
        ('"https://api.aimlapi.com/v2"', json.dumps(base_url.rstrip("/") + "/v2")),
        ('"<YOUR_AIMLAPI_KEY>"', json.dumps(api_key)),
        (SEED_IMAGE, json.dumps(image)),
    ]:
        assert seed_text in source, seed_text
        source = source.replace(seed_text, ours)
    namespace: dict[str, object] = {"__name__": "seed001"}
    exec(compile(source, str(SEED), "exec"), namespace)
    result = namespace["main"]()  # type: ignore[operator]
    assert result is not None and result["status"] == "completed", result
    video = requests.get(result["video"]["url"], timeout=60)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp", video.status_code
    print(f"seed client: completed, {len(video.content)} bytes of MP4 from {video.url[:60]}...")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
