"""Dispatch throughput and latency: embedded SQLite vs PostgreSQL + procrastinate.

Both set-ups run the same real engine on tiny clips (the CPU motion engine, 4 frames of
128x72 at 4 fps, no audio: a painted picture, a camera move, an H.264 MP4 with its
thumbnail in storage) with 4 job slots, in this one invocation:

- **embedded**: ``kinema serve --workers 4`` (SQLite in WAL mode, worker threads in the
  API process, local files);
- **procrastinate**: ``kinema serve --no-worker`` plus ``kinema worker --concurrency 4``
  (PostgreSQL at ``--postgres``, one procrastinate queue per model, local files);
- **procrastinate-2x2**: the same with two ``kinema worker --concurrency 2`` processes
  (one Python process holds one core at most: the GIL).

Two phases each, after a warm-up:

1. **burst**: ``--jobs`` jobs submitted over HTTP (``POST /v1/videos``) by ``--clients``
   threads as fast as the API takes them; jobs/s = jobs / (last finish - first submit).
2. **idle**: ``--idle-jobs`` jobs submitted one at a time, each once the previous one has
   finished, so every job finds idle workers; submit->start latency is the time from the
   client sending the request to the worker's claim (``started_at``; one machine, one
   clock), p50 and p99.

    python bench/scale_out.py [--jobs 2000] [--clients 8] [--idle-jobs 200]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--only embedded]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parents[1]

if str(ROOT) not in sys.path:  # run as ``python bench/scale_out.py``: bench is a package of ROOT
    sys.path.insert(0, str(ROOT))

from bench import tiny_service as tiny  # noqa: E402

SLOTS = 4
SETUPS = ("embedded", "procrastinate", "procrastinate-2x2")


@dataclass
class Setup:
    name: str
    env: dict[str, str]
    commands: list[list[str]]  # the API first
    database_url: str


def kinema(*args: str) -> list[str]:
    return [sys.executable, "-m", "kinema", *args, "--log-level", "warning"]


def start(setup: Setup, port: int, logs: Path) -> list[subprocess.Popen[bytes]]:
    processes = []
    for i, command in enumerate(setup.commands):
        log = (logs / f"{setup.name}-{i}.log").open("ab")
        env = {**os.environ, **setup.env}
        processes.append(
            subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return processes
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{setup.name}: the API did not start; see {logs}")


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def times(db: Engine, ids: list[str]) -> dict[str, tuple[str, datetime, datetime, datetime]]:
    """id -> (status, created_at, started_at, finished_at) of finished jobs among ``ids``."""
    from kinema.schema import jobs

    query = (
        jobs.select()
        .with_only_columns(
            jobs.c.id, jobs.c.status, jobs.c.created_at, jobs.c.started_at, jobs.c.finished_at
        )
        .where(jobs.c.id.in_(ids), jobs.c.finished_at.is_not(None))
    )
    with db.connect() as connection:
        return {row.id: tuple(row)[1:] for row in connection.execute(query)}  # type: ignore[misc]


def count_finished(db: Engine, ids: set[str]) -> int:
    with db.connect() as connection:
        rows = connection.execute(text("SELECT id FROM jobs WHERE finished_at IS NOT NULL"))
        return sum(1 for (job_id,) in rows if job_id in ids)


def job_id(video: dict[str, Any]) -> str:
    return str(video["id"]).removeprefix("video_")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def cpu_snapshot(processes: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    """CPU seconds so far: the API, the workers, PostgreSQL, and this client."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    snapshot = {
        "api": cpu_seconds(processes[0].pid),
        "workers": sum(cpu_seconds(p.pid) for p in processes[1:]),
        "postgres": sum(cpu_seconds(pid) for pid in postgres_pids()),
        "client": usage.ru_utime + usage.ru_stime,
    }
    return snapshot


def burst(url: str, key: str, db: Engine, jobs: int, clients: int) -> dict[str, float]:
    submitted: list[tuple[str, float]] = []
    failures = [0]
    lock = threading.Lock()
    counter = iter(range(jobs))

    def client() -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            for _ in counter:
                sent = time.time()
                answer = http.post("/v1/videos", json=tiny.BODY)
                if answer.status_code != 200:
                    failures[0] += 1
                    continue
                with lock:
                    submitted.append((job_id(answer.json()), sent))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    begin = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    submit_end = time.time()
    ids = {job for job, _ in submitted}
    deadline = time.monotonic() + 1800
    while count_finished(db, ids) < len(ids):
        if time.monotonic() > deadline:
            raise RuntimeError("burst jobs did not finish in 30 min")
        time.sleep(0.25)
    rows = times(db, list(ids))
    last = max(r[3] for r in rows.values()).timestamp()
    waits = sorted((rows[j][2].timestamp() - sent) for j, sent in submitted)
    return {
        "jobs": len(ids),
        "http_failures": failures[0],
        "job_failures": sum(1 for r in rows.values() if r[0] != "succeeded"),
        "submit_per_s": len(ids) / (submit_end - begin),
        "jobs_per_s": len(ids) / (last - begin),
        "wall_s": last - begin,
        "queue_wait_p50_ms": 1000 * statistics.median(waits),
        "queue_wait_p99_ms": 1000 * waits[int(0.99 * (len(waits) - 1))],
    }


def idle(url: str, key: str, db: Engine, count: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {key}"}
    latencies, stored = [], []
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        for _ in range(count):
            time.sleep(0.05)  # workers settle back into waiting
            sent = time.time()
            answer = http.post("/v1/videos", json=tiny.BODY)
            answer.raise_for_status()
            ident = job_id(answer.json())
            while True:
                row = times(db, [ident]).get(ident)
                if row is not None:
                    break
                time.sleep(0.005)
            latencies.append(row[2].timestamp() - sent)
            stored.append(row[2].timestamp() - row[1].timestamp())
    latencies.sort()
    stored.sort()

    def pct(values: list[float], p: float) -> float:
        return 1000 * values[round(p * (len(values) - 1))]

    return {
        "jobs": count,
        "start_p50_ms": pct(latencies, 0.5),
        "start_p99_ms": pct(latencies, 0.99),
        "row_to_start_p50_ms": pct(stored, 0.5),
        "row_to_start_p99_ms": pct(stored, 0.99),
    }


def run(setup: Setup, port: int, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    from kinema.db import make_engine

    key = tiny.api_key(setup.env, "bench")
    processes = start(setup, port, logs)
    db = make_engine(setup.database_url)
    url = f"http://127.0.0.1:{port}"
    try:
        burst(url, key, db, 20, 4)  # warm-up: engines set up, connections open
        time.sleep(1)
        before = cpu_snapshot(processes)
        loaded = burst(url, key, db, args.jobs, args.clients)
        after = cpu_snapshot(processes)
        for part, seconds in after.items():  # CPU per job, by process
            loaded[f"cpu_ms_per_job_{part}"] = 1000 * (seconds - before[part]) / loaded["jobs"]
        time.sleep(1)
        quiet = idle(url, key, db, args.idle_jobs)
    finally:
        stop(processes)
        db.dispose()
    return {"burst": loaded, "idle": quiet}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--idle-jobs", type=int, default=200)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--only", choices=SETUPS)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kinema-scale-"))
    catalog = work / "catalog.toml"
    catalog.write_text(tiny.CATALOG)
    results: dict[str, dict[str, Any]] = {}
    for name in SETUPS:
        if args.only and args.only != name:
            continue
        port = tiny.free_port()
        data = work / name
        env = {
            "KINEMA_DATA_DIR": str(data),
            "KINEMA_CATALOG_PATH": str(catalog),
            "KINEMA_SIGNING_SECRET": "bench",
            "KINEMA_PORT": str(port),
        }
        if name == "embedded":
            database_url = f"sqlite:///{data / 'kinema.db'}"
            commands = [kinema("serve", "--workers", str(SLOTS))]
        else:
            database_url = tiny.create_database(args.postgres, "kinema_bench")
            env |= {"KINEMA_DATABASE_URL": database_url, "KINEMA_DISPATCH": "procrastinate"}
            processes = 2 if name.endswith("2x2") else 1
            worker = kinema("worker", "--models", "tiny", "--concurrency", str(SLOTS // processes))
            commands = [kinema("serve", "--no-worker"), *[worker] * processes]
        setup = Setup(name, env, commands, database_url)
        print(f"--- {name} ---", flush=True)
        try:
            results[name] = run(setup, port, args, work)
        finally:
            if name != "embedded":
                tiny.drop_database(args.postgres, database_url)
        for phase, figures in results[name].items():
            shown = ", ".join(f"{k}={v:.1f}" for k, v in figures.items())
            print(f"{phase}: {shown}", flush=True)

    print()
    print(
        "| set-up | jobs/s (burst) | submit/s | queue wait p50 / p99 (burst) "
        "| submit->start p50 / p99 (idle) |"
    )
    print("|---|---|---|---|---|")
    for name, figures in results.items():
        b, i = figures["burst"], figures["idle"]
        print(
            f"| {name} | {b['jobs_per_s']:.1f} | {b['submit_per_s']:.1f} "
            f"| {b['queue_wait_p50_ms']:.0f} / {b['queue_wait_p99_ms']:.0f} ms "
            f"| {i['start_p50_ms']:.1f} / {i['start_p99_ms']:.1f} ms |"
        )
    print(f"\nlogs: {work}  (started {datetime.now(UTC).isoformat(timespec='seconds')})")


if __name__ == "__main__":
    main()
