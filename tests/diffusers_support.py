"""Helpers of the diffusers engines' tests: tiny weights on disk, engines over them, jobs
through HTTP."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinema.engines.config import EngineConfig
from kinema.engines.diffusion import Residency
from kinema.engines.diffusion.accel import footprint
from kinema.engines.diffusion.engine import DiffusionEngine
from kinema.engines.registry import build_engine
from kinema.types import EngineRequest
from tests.support import LiveServer, data_uri, pattern_image
from tests.tiny_pipelines import BUILDERS

GIB = 1024**3
TINY = {"steps": 2, "sizes": ["64x32", "32x64"], "max_sequence_length": 16}


@dataclass(frozen=True)
class Weights:
    path: Path
    footprint: int  # bytes of the weights once loaded


def save_all(root: Path, kinds: tuple[str, ...] = tuple(BUILDERS)) -> dict[str, Weights]:
    """Each kind's tiny pipeline saved in diffusers layout under ``root``."""
    saved = {}
    for kind in kinds:
        pipe = BUILDERS[kind]()
        pipe.save_pretrained(root / kind)
        saved[kind] = Weights(root / kind, footprint(pipe, "none"))
    return saved


def tiny_engine(
    kind: str,
    weights: dict[str, Weights],
    residency: Residency | None = None,
    name: str | None = None,
    **options: Any,
) -> DiffusionEngine:
    config = EngineConfig(
        name or kind, kind, 8, {"weights": str(weights[kind].path), **TINY, **options}
    )
    engine = build_engine(config, residency)
    assert isinstance(engine, DiffusionEngine)
    return engine


def request(**fields: Any) -> EngineRequest:
    values: dict[str, Any] = {
        "prompt": "a red cat walks slowly in the park",
        "width": 1280,
        "height": 720,
        "fps": 8,
        "num_frames": 8,
        "generate_audio": False,
        "seed": 7,
        "image": pattern_image(160, 90),
    }
    values.update(fields)
    return EngineRequest(**values)


def never() -> bool:
    return False


def create(server: LiveServer, model: str, **fields: Any) -> dict:
    body = {"model": model, "prompt": "a red cat walks", "image_url": data_uri(pattern_image())}
    with server.client() as client:
        response = client.post("/v1/videos/generations", json=body | fields)
    assert response.status_code == 200, response.text
    return response.json()


def watch(server: LiveServer, task_id: str, timeout_s: float = 60) -> tuple[dict, list[int]]:
    """Poll until the task ends; return it and every progress value seen."""
    seen = []
    deadline = time.monotonic() + timeout_s
    with server.client() as client:
        while time.monotonic() < deadline:
            task = client.get(f"/v1/tasks/{task_id}").json()
            seen.append(task["progress"])
            if task["status"] not in ("pending", "processing"):
                return task, seen
            time.sleep(0.02)
    raise AssertionError(f"task {task_id} did not finish in {timeout_s} s")
