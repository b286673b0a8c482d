"""Soak: mixed creates, polls and cancels, and kill -9 of workers, on PostgreSQL + S3.

One API process (``kinema serve --no-worker``, procrastinate dispatch) and two
``kinema worker`` processes share a throwaway PostgreSQL database (on ``--postgres``) and a
bucket on a moto S3 server (its own process). The engine is the CPU motion engine on tiny
clips (4 frames of 128x72, no audio). For ``--minutes``:

- ``--rate`` creates per second (``POST /v1/videos``), about one in ``--cancel-every``
  deleted at a random moment after its create (``DELETE /v1/videos/{id}``: a queued or
  running job is cancelled, then removed with its files; a 409 "still being cancelled"
  is retried);
- ``--pollers`` threads poll random accepted jobs without pause;
- every ``--kill-every`` seconds the *victim* worker is killed with SIGKILL and a new one
  started in its place; the other worker (the *survivor*) lives the whole run, so its
  memory can be followed from start to end;
- every ``--sample-s`` seconds the RSS of every process (API, survivor, current victim,
  moto, this client) is read from ``/proc``.

At the end creates stop, every accepted job is waited for, then checked: terminal, a
succeeded job with exactly one output whose video and thumbnail exist in the bucket, a
deleted job gone from the database, and no object in the bucket outside the keys of a
job's recorded inputs and outputs (an orphan). The memory slope of each long-lived process
is a least-squares fit of RSS over time, leaving out the first ``--warmup-s`` seconds.
Every process runs a copy of ``src/`` taken at the start, so editing the checkout while
the soak runs changes nothing in it.

    python bench/soak.py [--minutes 30] [--rate 1.0] [--postgres postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]

if str(ROOT) not in sys.path:  # run as ``python bench/soak.py``: bench is a package of ROOT
    sys.path.insert(0, str(ROOT))

from bench import tiny_service as tiny  # noqa: E402

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "soak",
    "AWS_SECRET_ACCESS_KEY": "soak",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def slope_mib_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per hour."""
    if len(samples) < 3:
        return float("nan")
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return 3600 * cov / var if var else float("nan")


@dataclass
class Soak:
    url: str
    key: str
    accepted: list[str] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    answers: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def count(self, what: str, response: httpx.Response) -> None:
        with self.lock:
            self.answers[f"{what} {response.status_code}"] += 1
            if response.status_code >= 500:
                self.errors.append(f"{what} {response.status_code} {response.text[:200]}")

    def creator(self, rate: float, cancel_every: int) -> None:
        rng = random.Random(1)
        with self.client() as http:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    answer = http.post("/v1/videos", json=tiny.BODY)
                except httpx.HTTPError as error:
                    self.errors.append(f"create: {error!r}")
                    continue
                self.count("create", answer)
                if answer.status_code == 200:
                    ident = str(answer.json()["id"])
                    with self.lock:
                        self.accepted.append(ident)
                    if rng.randrange(cancel_every) == 0:
                        delay = rng.uniform(0, 3)
                        threading.Timer(delay, self.cancel, (ident,)).start()
                self.stop.wait(max(0.0, 1 / rate - (time.monotonic() - started)))

    def cancel(self, ident: str) -> None:
        with self.client() as http:
            for _ in range(30):
                try:
                    answer = http.delete(f"/v1/videos/{ident}")
                except httpx.HTTPError as error:
                    self.errors.append(f"delete: {error!r}")
                    return
                self.count("delete", answer)
                if answer.status_code != 409:
                    break
                time.sleep(1)
        if answer.status_code == 200:
            with self.lock:
                self.deleted.add(ident.removeprefix("video_"))

    def poller(self, seed: int) -> None:
        rng = random.Random(seed)
        with self.client() as http:
            while not self.stop.is_set():
                with self.lock:
                    ident = rng.choice(self.accepted) if self.accepted else None
                if ident is None:
                    time.sleep(0.1)
                    continue
                try:
                    self.count("poll", http.get(f"/v1/videos/{ident}"))
                except httpx.HTTPError as error:
                    self.errors.append(f"poll: {error!r}")
                time.sleep(0.02)


class Processes:
    """The API, the survivor and the victim worker, and moto; each with its RSS samples."""

    def __init__(self, env: dict[str, str], logs: Path, api_port: int, moto_port: int) -> None:
        self.env = {**os.environ, **env}
        self.logs = logs
        self.rss: dict[str, list[tuple[float, float]]] = {}
        self.begin = time.monotonic()
        self.moto = self._start(
            "moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)]
        )
        self.api_port = api_port
        self.api: subprocess.Popen[bytes] | None = None
        self.survivor: subprocess.Popen[bytes] | None = None
        self.victim: subprocess.Popen[bytes] | None = None
        self.victims = 0

    def _start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        return subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=log, stderr=log)

    def start_kinema(self) -> None:
        kinema = [sys.executable, "-m", "kinema"]
        self.api = self._start(
            "api", [*kinema, "serve", "--no-worker", "--port", str(self.api_port)]
        )
        worker = [*kinema, "worker", "--models", "tiny", "--concurrency", "2"]
        self.survivor = self._start("survivor", worker)
        self.victim = self._start("victim-0", worker)

    def kill_victim(self) -> None:
        assert self.victim is not None
        self.victim.send_signal(signal.SIGKILL)
        self.victim.wait(10)
        self.victims += 1
        worker = [sys.executable, "-m", "kinema", "worker", "--models", "tiny"]
        self.victim = self._start(f"victim-{self.victims}", [*worker, "--concurrency", "2"])

    def sample(self) -> None:
        now = time.monotonic() - self.begin
        named = {
            "api": self.api,
            "survivor": self.survivor,
            f"victim-{self.victims}": self.victim,
            "moto": self.moto,
        }
        for name, process in named.items():
            if process is not None and (mib := rss_mib(process.pid)) is not None:
                self.rss.setdefault(name, []).append((now, mib))
        if (mib := rss_mib(os.getpid())) is not None:
            self.rss.setdefault("client", []).append((now, mib))

    def alive(self) -> dict[str, bool]:
        named = {"api": self.api, "survivor": self.survivor, "moto": self.moto}
        return {name: p is not None and p.poll() is None for name, p in named.items()}

    def stop_all(self) -> None:
        for process in (self.victim, self.survivor, self.api, self.moto):
            if process is not None and process.poll() is None:
                process.terminate()
        for process in (self.victim, self.survivor, self.api, self.moto):
            if process is not None:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()


def wait_http(url: str, what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not start")


def audit(database_url: str, soak: Soak, s3: Any, bucket: str) -> dict[str, Any]:
    """Every accepted job's final state, outputs and objects; orphans in the bucket."""
    from kinema.db import make_engine

    ids = {ident.removeprefix("video_") for ident in soak.accepted} - soak.deleted
    db = make_engine(database_url)
    with db.connect() as connection:
        rows = connection.execute(
            text("SELECT id, status, outputs, request, attempt FROM jobs")
        ).all()
    db.dispose()
    objects: set[str] = set()
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix="kinema/"):
        objects |= {item["Key"].removeprefix("kinema/") for item in page.get("Contents", [])}
    statuses: Counter[str] = Counter()
    problems: list[str] = []
    expected: set[str] = set()
    attempts: Counter[int] = Counter()
    for row in rows:
        if row.id not in ids:
            continue
        statuses[row.status] += 1
        attempts[row.attempt] += 1
        outputs = row.outputs if isinstance(row.outputs, list) else json.loads(row.outputs or "[]")
        request = row.request if isinstance(row.request, dict) else json.loads(row.request)
        for name in ("image", "last_image"):
            if request.get(name):
                expected.add(request[name])
        if row.status == "succeeded":
            if len(outputs) != 1:
                problems.append(f"{row.id}: {len(outputs)} outputs")
            for output in outputs:
                for key in (output.get("video_key"), output.get("thumbnail_key")):
                    if key:
                        expected.add(key)
                        if key not in objects:
                            problems.append(f"{row.id}: {key} missing from the bucket")
        elif row.status not in ("failed", "cancelled"):
            problems.append(f"{row.id}: still {row.status}")
    present = {row.id for row in rows}
    problems += [f"{ident}: deleted but still in the database" for ident in soak.deleted & present]
    missing = ids - present
    problems += [f"{ident}: accepted but not in the database" for ident in sorted(missing)]
    orphans = sorted(objects - expected)
    return {
        "accepted": len(ids) + len(soak.deleted),
        "deleted": len(soak.deleted),
        "statuses": dict(statuses),
        "attempts": {str(k): v for k, v in sorted(attempts.items())},
        "problems": problems,
        "objects": len(objects),
        "orphans": len(orphans),
        "orphan_examples": orphans[:5],
    }


def drain(database_url: str, ids: set[str], timeout_s: float) -> int:
    """Wait until every job in ``ids`` is terminal; how many are not, at the end."""
    from kinema.db import make_engine

    db = make_engine(database_url)
    deadline = time.monotonic() + timeout_s
    open_jobs = len(ids)
    try:
        while time.monotonic() < deadline:
            with db.connect() as connection:
                rows = connection.execute(text("SELECT id, status FROM jobs")).all()
            terminal = ("succeeded", "failed", "cancelled")
            open_jobs = sum(1 for r in rows if r.id in ids and r.status not in terminal)
            if open_jobs == 0:
                return 0
            time.sleep(1)
    finally:
        db.dispose()
    return open_jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=1.0, help="creates per second")
    parser.add_argument("--pollers", type=int, default=2)
    parser.add_argument("--cancel-every", type=int, default=8)
    parser.add_argument("--kill-every", type=float, default=60)
    parser.add_argument("--sample-s", type=float, default=10)
    parser.add_argument("--warmup-s", type=float, default=120)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kinema-soak-"))
    (work / "catalog.toml").write_text(tiny.CATALOG)
    shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__"))
    database_url = tiny.create_database(args.postgres, "kinema_soak")
    api_port, moto_port = tiny.free_port(), tiny.free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    env = {
        **CREDENTIALS,
        "PYTHONPATH": str(work / "src"),
        "KINEMA_DATA_DIR": str(work / "data"),
        "KINEMA_CATALOG_PATH": str(work / "catalog.toml"),
        "KINEMA_SIGNING_SECRET": "soak",
        "KINEMA_DATABASE_URL": database_url,
        "KINEMA_DISPATCH": "procrastinate",
        "KINEMA_STORAGE_URL": f"s3://soak/kinema?endpoint_url={endpoint}&region=us-east-1",
        "KINEMA_LEASE_S": "10",
        "KINEMA_HEARTBEAT_S": "2",
        "KINEMA_RETENTION_S": "0",
    }
    processes = Processes(env, work, api_port, moto_port)
    try:
        wait_http(endpoint, "moto")
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="soak",
            aws_secret_access_key="soak",
        )
        s3.create_bucket(Bucket="soak")
        key = tiny.api_key(env, "soak")
        processes.start_kinema()
        wait_http(f"http://127.0.0.1:{api_port}/healthz", "the API")
        soak = Soak(f"http://127.0.0.1:{api_port}", key)
        threads = [threading.Thread(target=soak.creator, args=(args.rate, args.cancel_every))]
        threads += [threading.Thread(target=soak.poller, args=(i,)) for i in range(args.pollers)]
        for thread in threads:
            thread.start()
        begin = time.monotonic()
        next_kill = begin + args.kill_every
        while time.monotonic() - begin < args.minutes * 60:
            processes.sample()
            if time.monotonic() >= next_kill:
                processes.kill_victim()
                next_kill += args.kill_every
            time.sleep(args.sample_s)
        soak.stop.set()
        for thread in threads:
            thread.join()
        ran_s = time.monotonic() - begin
        ids = {ident.removeprefix("video_") for ident in soak.accepted} - soak.deleted
        still_open = drain(database_url, ids, timeout_s=600)
        processes.sample()
        alive = processes.alive()
        figures = audit(database_url, soak, s3, "soak")
    finally:
        processes.stop_all()
        tiny.drop_database(args.postgres, database_url)
    warm = {
        who: [(t, m) for t, m in samples if t >= args.warmup_s]
        for who, samples in processes.rss.items()
    }
    figures |= {
        "minutes": round(ran_s / 60, 1),
        "workers_killed": processes.victims,
        "still_open_after_drain": still_open,
        "alive_at_end": alive,
        "answers": dict(sorted(soak.answers.items())),
        "server_errors": soak.errors[:10],
        "rss_mib": {
            who: {
                "first": round(samples[0][1], 1),
                "last": round(samples[-1][1], 1),
                "max": round(max(m for _, m in samples), 1),
                "slope_mib_per_hour": round(slope_mib_per_hour(warm[who]), 2),
                "samples": len(samples),
            }
            for who, samples in processes.rss.items()
            if samples
        },
        "logs": str(work),
    }
    shown = json.dumps(figures, indent=2)
    print(shown)
    if args.out:
        args.out.write_text(shown + "\n")


if __name__ == "__main__":
    main()
