"""A Vertex AI poll of a finished video must not stall everyone else's polls.

A Vertex AI poll (``POST ...:fetchPredictOperation``) of a finished job carries the MP4
inline, base64-encoded. This measures the p99 latency of an AI/ML API poll (one client,
one request after another) first alone, then while eight clients poll a finished 8 s
1080p Vertex AI job without pause, on one kinema API process (uvicorn, no workers), and
reports the ratio. Goal: <= 2x. The eight clients run in a process of their own: as
threads beside the measuring client, their parsing of each megabyte of JSON held the
measuring thread off the GIL, and the bench measured itself.

    python bench/vertex_poll_latency.py [--polls 400] [--src DIR]

``--src`` serves another checkout's ``src`` (an older commit, for a before/after run)
against the same jobs, made by this checkout.
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PORT = 8741


def prepare_jobs(data_dir: Path) -> tuple[str, str, str, int]:
    """A key, a finished AI/ML API job and a finished 8 s 1080p Vertex AI job."""
    sys.path.insert(0, str(ROOT / "src"))
    from kinema.client import KinemaClient
    from kinema.runtime import Runtime
    from kinema.server import BackgroundServer
    from kinema.settings import Settings

    runtime = Runtime.build(Settings(data_dir=data_dir), workers=1)
    _, key = runtime.keys.create("bench")
    sample = ROOT / "src/kinema/assets/sample.jpg"
    with BackgroundServer(runtime) as server, KinemaClient(server.url, key) as client:
        created = client.create(
            "static", sample, model="google/veo-3.0-i2v-fast", duration=4, generate_audio=False
        )
        client.wait(created["id"])
        image = {
            "bytesBase64Encoded": base64.b64encode(sample.read_bytes()).decode(),
            "mimeType": "image/jpeg",
        }
        body = {
            "instances": [{"prompt": "a slow push-in", "image": image}],
            "parameters": {"durationSeconds": 8, "resolution": "1080p", "generateAudio": True},
        }
        google = {"x-goog-api-key": key}
        model = "veo-3.1-generate-001"
        vertex = httpx.post(
            f"{server.url}/v1beta1/publishers/google/models/{model}:predictLongRunning",
            json=body,
            headers=google,
        ).json()["name"]
        deadline = time.monotonic() + 300
        while True:
            answer = httpx.post(
                vertex_url(server.url, vertex), json={"operationName": vertex}, headers=google
            ).json()
            if answer.get("done"):
                break
            if time.monotonic() > deadline:
                sys.exit("the Vertex AI job did not finish")
            time.sleep(0.5)
        size = len(answer["response"]["videos"][0]["bytesBase64Encoded"])
    runtime.close()
    return key, created["id"], vertex, size


def vertex_url(base: str, name: str) -> str:
    return f"{base}/v1beta1/{name.rpartition('/operations/')[0]}:fetchPredictOperation"


def poll_latencies(url: str, headers: dict[str, str], count: int) -> list[float]:
    seconds = []
    with httpx.Client(headers=headers, timeout=60) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = client.get(url)
            seconds.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    return seconds


def vertex_pollers(url: str, key: str, name: str, count: int, stop, served) -> None:
    """``count`` clients polling the Vertex AI job without pause until ``stop`` is set
    (run in a process of its own)."""

    def poller() -> None:
        with httpx.Client(headers={"x-goog-api-key": key}, timeout=120) as client:
            while not stop.is_set():
                answer = client.post(url, json={"operationName": name})
                assert answer.status_code == 200 and answer.json()["done"], answer.text[:200]
                with served.get_lock():
                    served.value += 1

    threads = [threading.Thread(target=poller) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--polls", type=int, default=400)
    parser.add_argument("--pollers", type=int, default=8)
    parser.add_argument("--src", type=Path, default=ROOT / "src")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        key, generation_id, vertex, size = prepare_jobs(data_dir)
        print(f"Vertex AI poll body: {size} base64 characters of MP4")
        env = {
            **os.environ,
            "KINEMA_DATA_DIR": str(data_dir),
            "KINEMA_WORKERS": "0",
            "PYTHONPATH": str(args.src),
        }
        command = [sys.executable, "-m", "uvicorn", "kinema.api.app:create_app", "--factory"]
        command += ["--port", str(PORT), "--log-level", "warning", "--no-access-log"]
        server = subprocess.Popen(command, env=env, cwd=tmp)
        base = f"http://127.0.0.1:{PORT}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{base}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        sys.exit("the server did not start")
                    time.sleep(0.1)
            aiml = f"{base}/v2/video/generations?generation_id={generation_id}"
            bearer = {"Authorization": f"Bearer {key}"}
            poll_latencies(aiml, bearer, 50)  # warm up
            alone = poll_latencies(aiml, bearer, args.polls)
            context = multiprocessing.get_context("spawn")
            stop, served = context.Event(), context.Value("i", 0)
            pollers = context.Process(
                target=vertex_pollers,
                args=(vertex_url(base, vertex), key, vertex, args.pollers, stop, served),
            )
            pollers.start()
            time.sleep(2.0)
            started, served_before = time.monotonic(), served.value
            busy = poll_latencies(aiml, bearer, args.polls)
            elapsed, vertex_polls = time.monotonic() - started, served.value - served_before
            stop.set()
            pollers.join()
        finally:
            server.terminate()
            server.wait()
    print(
        f"AI/ML API poll alone:       p50 {statistics.median(alone) * 1000:7.2f} ms  "
        f"p99 {p99(alone) * 1000:7.2f} ms"
    )
    print(
        f"with {args.pollers} Vertex AI pollers: p50 {statistics.median(busy) * 1000:7.2f} ms  "
        f"p99 {p99(busy) * 1000:7.2f} ms  ({vertex_polls} Vertex polls served in {elapsed:.1f} s)"
    )
    print(f"p99 ratio: {p99(busy) / p99(alone):.2f}x (goal <= 2x)")


if __name__ == "__main__":
    main()
