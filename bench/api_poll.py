"""Status-poll throughput: kinema's GET /v2/video/generations vs a bare Starlette endpoint.

Both apps run under the same uvicorn command line (one process, same loop and HTTP
implementation, access log off) and are loaded by the same ``wrk`` run, one after the
other, in this one invocation. The kinema poll is the real thing: API-key check, job read
from SQLite, signed video URL. Goal: kinema >= 0.5x the bare endpoint.

    python bench/api_poll.py [--seconds 10] [--connections 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
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


def run_wrk(wrk: str, url: str, seconds: int, connections: int, key: str | None) -> float:
    command = [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", url]
    if key:
        command[1:1] = ["-H", f"Authorization: Bearer {key}"]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in output:
        sys.exit(f"non-2xx responses during the run:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not match:
        sys.exit(f"could not read wrk output:\n{output}")
    return float(match.group(1))


def prepare_job(data_dir: Path) -> tuple[str, str]:
    """Make a key and a completed 4 s job, so each poll renders a signed video URL."""
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
    runtime.close()
    return key, created["id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    wrk = ensure_wrk()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        key, generation_id = prepare_job(data_dir)
        env = {
            "KINEMA_DATA_DIR": str(data_dir),
            "KINEMA_WORKERS": "0",
            "PYTHONPATH": str(ROOT / "src"),
        }
        query = httpx.QueryParams({"generation_id": generation_id})

        kinema = uvicorn("kinema.api.app:create_app", 8731, env, factory=True)
        bare = uvicorn("bench.bare_starlette:app", 8732, {"PYTHONPATH": str(ROOT)}, factory=False)
        kinema_url = f"http://127.0.0.1:8731/v2/video/generations?{query}"
        bare_url = f"http://127.0.0.1:8732/v2/video/generations?{query}"
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(kinema_url, headers=headers).json()["status"] == "completed"
        kinema_runs, bare_runs = [], []
        try:
            # Alternate the two servers so drift in machine load hits both alike.
            for _ in range(args.rounds):
                kinema_runs.append(run_wrk(wrk, kinema_url, args.seconds, args.connections, key))
                bare_runs.append(run_wrk(wrk, bare_url, args.seconds, args.connections, key))
        finally:
            for process in (kinema, bare):
                process.terminate()
                process.wait()
    kinema_rps, bare_rps = statistics.median(kinema_runs), statistics.median(bare_runs)
    print(f"rounds: kinema {[round(r) for r in kinema_runs]}, bare {[round(r) for r in bare_runs]}")
    print(f"kinema poll:     {kinema_rps:10.0f} req/s")
    print(f"bare Starlette:  {bare_rps:10.0f} req/s")
    print(f"ratio:           {kinema_rps / bare_rps:10.2f}x  (goal >= 0.5x)")


if __name__ == "__main__":
    main()
