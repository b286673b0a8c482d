"""Status-poll throughput: kinema's polls vs a bare Starlette endpoint.

Both apps run under the same uvicorn command line (one process, same loop and HTTP
implementation, access log off) and are loaded by the same ``wrk`` run, one after the
other, in this one invocation. The kinema polls are the real thing: API-key check, job
read from SQLite, signed video URL. Goal: the AI/ML API poll >= 0.5x the bare endpoint.
Two bare peers run: one returns the very object kinema answered the AI/ML poll with (the
same bytes to serialise and send: the goal's measure), the other the short body of the
earlier rounds (for comparison with them).
Also measured, each against the same bare runs: the Gemini API poll (``GET
/v1beta/{operation}``) and the Vertex AI poll (``POST ...:fetchPredictOperation``), which
carries the finished MP4 inline (base64), so its responses are the video's size.

    python bench/api_poll.py [--seconds 10] [--connections 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    print("wrk not found; installing it with apt-get", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    wrk = shutil.which("wrk")
    if not wrk:
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
        wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("wrk is required: apt-get install wrk")
    return wrk


def uvicorn(target: str, port: int, env: dict[str, str], *, factory: bool) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if factory:
        command.append("--factory")
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    sys.exit(f"{target} did not start")


def run_wrk(
    wrk: str,
    url: str,
    seconds: int,
    connections: int,
    headers: dict[str, str],
    script: Path | None = None,
) -> float:
    command = [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", url]
    for name, value in headers.items():
        command[1:1] = ["-H", f"{name}: {value}"]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in output:
        sys.exit(f"non-2xx responses during the run:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not match:
        sys.exit(f"could not read wrk output:\n{output}")
    return float(match.group(1))


def prepare_jobs(data_dir: Path) -> tuple[str, str, str, str]:
    """Make a key and three completed 4 s jobs (AI/ML API, Gemini API, Vertex AI), so
    each poll renders a finished job: the AI/ML API id, the two operation names."""
    sys.path.insert(0, str(ROOT / "src"))
    from kinema.client import KinemaClient
    from kinema.runtime import Runtime
    from kinema.server import BackgroundServer
    from kinema.settings import Settings

    runtime = Runtime.build(Settings(data_dir=data_dir), workers=1)
    _, key = runtime.keys.create("bench")
    with BackgroundServer(runtime) as server, KinemaClient(server.url, key) as client:
        created = client.create(
            "static",
            ROOT / "src/kinema/assets/sample.jpg",
            model="google/veo-3.0-i2v-fast",
            duration=4,
            generate_audio=False,
        )
        client.wait(created["id"])
        png = (ROOT / "src/kinema/assets/sample.jpg").read_bytes()
        image = {"bytesBase64Encoded": base64.b64encode(png).decode(), "mimeType": "image/jpeg"}
        body = {
            "instances": [{"prompt": "static", "image": image}],
            "parameters": {"durationSeconds": 4, "resolution": "720p", "generateAudio": False},
        }
        google = {"x-goog-api-key": key}
        model = "veo-3.1-fast-generate-001"
        gemini = httpx.post(
            f"{server.url}/v1beta/models/{model}:predictLongRunning", json=body, headers=google
        ).json()["name"]
        vertex = httpx.post(
            f"{server.url}/v1beta1/publishers/google/models/{model}:predictLongRunning",
            json=body,
            headers=google,
        ).json()["name"]
        deadline = time.monotonic() + 120
        while not httpx.get(f"{server.url}/v1beta/{gemini}", headers=google).json()["done"]:
            if time.monotonic() > deadline:
                sys.exit("the Gemini job did not finish")
            time.sleep(0.2)
        while not fetch_vertex(server.url, vertex, google).get("done"):
            if time.monotonic() > deadline:
                sys.exit("the Vertex job did not finish")
            time.sleep(0.2)
    runtime.close()
    return key, created["id"], gemini, vertex


def vertex_url(base: str, name: str) -> str:
    return f"{base}/v1beta1/{name.rpartition('/operations/')[0]}:fetchPredictOperation"


def fetch_vertex(base: str, name: str, headers: dict[str, str]) -> dict:
    response = httpx.post(vertex_url(base, name), json={"operationName": name}, headers=headers)
    return dict(response.json())


def post_script(directory: Path, body: dict) -> Path:
    """A wrk Lua script that POSTs ``body`` as JSON."""
    script = directory / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
    )
    return script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    wrk = ensure_wrk()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        key, generation_id, gemini, vertex = prepare_jobs(data_dir)
        env = {
            "KINEMA_DATA_DIR": str(data_dir),
            "KINEMA_WORKERS": "0",
            "PYTHONPATH": str(ROOT / "src"),
        }
        query = httpx.QueryParams({"generation_id": generation_id})
        base = "http://127.0.0.1:8731"
        bearer = {"Authorization": f"Bearer {key}"}
        google = {"x-goog-api-key": key}
        polls = {
            "AI/ML API poll": (f"{base}/v2/video/generations?{query}", bearer, None),
            "Gemini API poll": (f"{base}/v1beta/{gemini}", google, None),
            "Vertex AI poll": (
                vertex_url(base, vertex),
                google,
                post_script(data_dir, {"operationName": vertex}),
            ),
        }

        kinema = uvicorn("kinema.api.app:create_app", 8731, env, factory=True)
        answer = httpx.get(polls["AI/ML API poll"][0], headers=bearer).json()
        assert answer["status"] == "completed"
        (data_dir / "poll.json").write_text(json.dumps(answer))
        peer_env = {"PYTHONPATH": str(ROOT), "KINEMA_BENCH_BODY": str(data_dir / "poll.json")}
        bare = uvicorn("bench.bare_starlette:app", 8732, peer_env, factory=False)
        short = uvicorn("bench.bare_starlette:app", 8733, {"PYTHONPATH": str(ROOT)}, factory=False)
        peers = {
            "bare Starlette": f"http://127.0.0.1:8732/v2/video/generations?{query}",
            "bare, short body": f"http://127.0.0.1:8733/v2/video/generations?{query}",
        }
        same = httpx.get(peers["bare Starlette"]).content
        print(f"AI/ML poll body: {len(same)} bytes from kinema and its bare peer alike")
        assert httpx.get(polls["Gemini API poll"][0], headers=google).json()["done"] is True
        inline = fetch_vertex(base, vertex, google)["response"]["videos"][0]
        print(f"Vertex poll body: {len(inline['bytesBase64Encoded'])} base64 characters of MP4")
        runs: dict[str, list[float]] = {name: [] for name in [*polls, *peers]}
        try:
            # Alternate the servers so drift in machine load hits all alike.
            for _ in range(args.rounds):
                for name, (url, headers, script) in polls.items():
                    runs[name].append(
                        run_wrk(wrk, url, args.seconds, args.connections, headers, script)
                    )
                for name, url in peers.items():
                    runs[name].append(run_wrk(wrk, url, args.seconds, args.connections, bearer))
        finally:
            for process in (kinema, bare, short):
                process.terminate()
                process.wait()
    bare_rps = statistics.median(runs["bare Starlette"])
    for name, rounds in runs.items():
        rps = statistics.median(rounds)
        print(
            f"{name:16} {rps:8.0f} req/s  ratio {rps / bare_rps:5.2f}x  "
            f"rounds {[round(r) for r in rounds]}"
        )
    print("goal: AI/ML API poll >= 0.5x bare Starlette (the peer answering the same body)")


if __name__ == "__main__":
    main()
