"""The compose stack under load, with a worker killed mid-job: every job completes once.

Usage: check_compose.py BASE_URL API_KEY JOBS -- KILL_COMMAND...

Submits JOBS 8-second 1080p jobs (more than the two workers run at once), waits until two
of them have made progress, runs KILL_COMMAND (a SIGKILL to one worker's container), then
waits until every job has succeeded and downloads each video (a signed link, redirected
to the store).
Prints the seconds each step took.
"""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path

import httpx

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "kinema" / "assets" / "sample.jpg"
RENDERING = {"generating"}
WAITING = {"queued", "generating", "waiting", "active"}


def rendering(status: dict) -> bool:
    """Claimed by a worker and past its first frames."""
    return status["status"] in RENDERING and (status.get("progress") or 0) > 0


def main(base_url: str, api_key: str, count: int, kill: list[str]) -> None:
    import subprocess

    started = time.monotonic()
    headers = {"Authorization": f"Bearer {api_key}"}
    image = "data:image/jpeg;base64," + base64.b64encode(SAMPLE.read_bytes()).decode()
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:

        def statuses() -> dict[str, dict]:
            return {
                gid: client.get("/v2/video/generations", params={"generation_id": gid}).json()
                for gid in ids
            }

        ids = []
        for number in range(count):
            created = client.post("/v2/video/generations", json={
                "model": "google/veo-3.1-i2v", "prompt": f"Push in slowly, take {number}",
                "image_url": image, "duration": 8, "resolution": "1080p",
            })  # fmt: skip
            assert created.status_code == 200, created.text
            ids.append(created.json()["id"])
        deadline = time.monotonic() + 300
        while sum(rendering(s) for s in statuses().values()) < 2:
            assert time.monotonic() < deadline, statuses()
            time.sleep(0.5)
        print(f"[{time.monotonic() - started:.0f} s] two jobs rendering; killing: {kill}")
        subprocess.run(kill, check=True)
        deadline = time.monotonic() + 900
        while True:
            now = statuses()
            if not any(s["status"] in WAITING for s in now.values()):
                break
            assert time.monotonic() < deadline, now
            time.sleep(2)
        failed = {gid: s for gid, s in now.items() if s["status"] != "completed"}
        assert not failed, failed
        for gid, status in now.items():
            video = client.get(status["video"]["url"], follow_redirects=True)
            assert video.status_code == 200 and video.content[4:8] == b"ftyp", gid
        print(f"[{time.monotonic() - started:.0f} s] all {count} jobs completed and downloaded")


if __name__ == "__main__":
    split = sys.argv.index("--")
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[split + 1 :])
