"""What the service benchmarks (``soak``, ``scale_out``) share: a tiny model, its create
body, and the throwaway pieces each run sets up (a free port, an API key, a database).

The model is the CPU motion engine on tiny clips (4 frames of 128x72 at 4 fps, no audio),
served through the OpenAI Videos dialect, so a job is real work that ends in seconds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
CATALOG = """
[engines.tiny]
kind = "motion"
fps = 4

[models.tiny]
dialect = "openai"
engine = "tiny"
inputs = "text"
durations = [1]
default_duration = 1
aspect_ratios = ["16:9"]
resolutions = ["720p"]
sizes = ["128x72"]
audio = false
default_audio = false
options = ["duration", "size"]
"""
BODY = {"model": "tiny", "prompt": "a lighthouse at dusk", "seconds": "1", "size": "128x72"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api_key(env: dict[str, str], owner: str) -> str:
    """A key for ``owner`` made through kinema's own runtime, with ``env`` (its database,
    which this migrates)."""
    code = (
        "from kinema.runtime import Runtime; from kinema.settings import Settings; "
        "r = Runtime.build(Settings(), workers=0); "
        f"print(r.keys.create({owner!r})[1]); r.close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def create_database(admin_url: str, prefix: str) -> str:
    """A new, empty PostgreSQL database named ``{prefix}_<8 hex>``; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
