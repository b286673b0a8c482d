"""A diffusers engine extending a video: it is conditioned on the source's last frame.

A tiny random Wan 2.2 TI2V pipeline (see ``tiny_pipelines``) renders on the CPU; jobs
are accepted by ``Runtime.create`` and run by the executor, as a worker runs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from kinema.engines.diffusion.engine import DiffusionEngine, Plan
from kinema.runtime import Runtime
from kinema.types import EngineRequest, JobStatus, output_ref
from kinema.views import Creation
from tests.outputs_support import frames_of, run_next
from tests.support import data_uri, make_settings, pattern_image, probe
from tests.tiny_pipelines import BUILDERS

CATALOG = """
[engines.tiny-wan]
kind = "wan_ti2v"
fps = 8
weights = "{weights}"
steps = 2
sizes = ["64x32"]
max_sequence_length = 16
audio = "refuse"

[models.tiny-wan]
dialects = ["openai"]
engine = "tiny-wan"
inputs = "any"
durations = [1]
default_duration = 1
aspect_ratios = ["16:9"]
resolutions = ["720p"]
audio = false
samples = 2
extension = {{ max_input_s = 4, max_output_s = 4 }}
options = ["duration", "seed"]
"""


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    root = tmp_path_factory.mktemp("diffusers-extension")
    BUILDERS["wan_ti2v"]().save_pretrained(root / "weights")
    catalog = root / "catalog.toml"
    catalog.write_text(CATALOG.format(weights=root / "weights"))
    built = Runtime.build(make_settings(root, catalog_path=catalog), workers=0)
    try:
        yield built
    finally:
        built.close()


def create(runtime: Runtime, **fields: Any) -> None:
    runtime.service.create("o", "openai", Creation(model="tiny-wan", fields=fields))


def test_extension_conditions_the_pipeline_on_the_sources_last_frame(runtime: Runtime):
    create(runtime, prompt="a red cat", image=data_uri(pattern_image(128, 64)), seed=3)
    source = run_next(runtime)
    assert source.status is JobStatus.SUCCEEDED, source.error_message
    source_frames = frames_of(runtime.storage.get_bytes(source.outputs[0].video_key))

    engine = runtime.engines.get("tiny-wan")
    assert isinstance(engine, DiffusionEngine)
    plans: list[Plan] = []
    real_plan = engine.plan

    def recording_plan(request: EngineRequest) -> Plan:
        plans.append(real_plan(request))
        return plans[-1]

    engine.plan = recording_plan  # type: ignore[method-assign]
    try:
        create(runtime, prompt="the cat sits", video=output_ref(source.id))
        extended = run_next(runtime)
    finally:
        del engine.plan

    assert extended.status is JobStatus.SUCCEEDED, extended.error_message
    assert len(plans) == 1 and plans[0].image is not None
    conditioned = np.asarray(plans[0].image)
    assert conditioned.shape == source_frames[-1].shape
    assert np.abs(conditioned.astype(int) - source_frames[-1].astype(int)).mean() < 3.0
    facts = probe(runtime.storage.get_bytes(extended.outputs[0].video_key))
    assert (facts.width, facts.height) == (64, 32)
    assert facts.frames == len(source_frames) + plans[0].num_frames


def test_two_samples_from_a_diffusers_engine_differ(runtime: Runtime):
    image = data_uri(pattern_image(128, 64))
    create(runtime, prompt="a red cat", image=image, seed=3, sample_count=2)
    job = run_next(runtime)

    assert job.status is JobStatus.SUCCEEDED, job.error_message
    first, second = (frames_of(runtime.storage.get_bytes(o.video_key)) for o in job.outputs)
    assert len(first) == len(second)
    assert np.abs(first[-1].astype(int) - second[-1].astype(int)).mean() > 1.0

