"""What forwarding costs: a job through kinema to a provider vs. the provider directly.

A provider kinema process renders quick grey clips (tests/upstream_support.py); a gateway
kinema in this process forwards the same model to it with an upstream engine (``v1``
protocol, no faults). Each job is timed from the create request to a downloaded MP4,
sequentially, first straight at the provider, then through the gateway at two poll
intervals. The difference is kinema's share: its own queue and claim, the submission,
polling granularity (half an interval on average), the download, PyAV probe, thumbnail
and storage of the file.

    python -m bench.upstream_overhead --jobs 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from tests.support import data_uri, live_server, make_settings, pattern_image
from tests.upstream_support import (
    PROVIDER_KEY_ENV,
    forwarding_model,
    provider_process,
    toml_text,
    upstream_engine,
)

MODEL = "veo-3.0-fast-generate-001"


def _run(client: httpx.Client, model: str, image: str) -> float:
    started = time.perf_counter()
    created = client.post(
        "/v1/video/generations",
        json={"model": model, "prompt": "bench", "images": [image], "seconds": 4},
    ).json()
    while True:
        body = client.get(f"/v1/video/generations/{created['id']}").json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.02)
    assert body["status"] == "succeeded", body
    assert client.get(body["url"]).content[4:8] == b"ftyp"
    return time.perf_counter() - started


def _series(client: httpx.Client, model: str, image: str, jobs: int) -> list[float]:
    _run(client, model, image)  # warm-up
    return [_run(client, model, image) for _ in range(jobs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args()
    image = data_uri(pattern_image(320, 180))
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, provider_process(Path(tmp)) as provider:
        with provider.client() as client:
            results["provider directly"] = _series(client, MODEL, image, args.jobs)
        os.environ[PROVIDER_KEY_ENV] = provider.api_key
        for poll_s in (0.25, 1.0):
            engines: dict[str, Any] = {
                "hosted": upstream_engine("v1", provider.url, model=MODEL, poll_s=poll_s)
            }
            models = forwarding_model(MODEL, model_id="fwd", dialect="v1", engine="hosted")
            catalog = Path(tmp) / f"gateway-{poll_s}.toml"
            catalog.write_text(toml_text({"engines": engines, "models": models}))
            settings = make_settings(Path(tmp) / f"gw-{poll_s}", catalog_path=catalog)
            with live_server(settings, workers=1) as server, server.client() as client:
                results[f"through kinema, poll_s={poll_s}"] = _series(
                    client, "fwd", image, args.jobs
                )
    base = statistics.median(results["provider directly"])
    print(f"{'path':32} {'median s':>9} {'p90 s':>7} {'overhead s':>11}")
    for name, times in results.items():
        ordered = sorted(times)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        median = statistics.median(times)
        print(f"{name:32} {median:9.2f} {p90:7.2f} {median - base:11.2f}")


if __name__ == "__main__":
    main()
