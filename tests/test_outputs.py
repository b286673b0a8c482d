"""Several videos per job, extensions and remixes, below the HTTP layer.

Jobs are accepted through ``Runtime.create``/``Runtime.remix`` (as every dialect does)
and run here, one at a time, by ``run_next``, so each step happens exactly when the test
says: a source can expire between an extension's acceptance and its run.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kinema.errors import InvalidRequest, NotFound
from kinema.jobs.execute import RunControl, sample_seeds
from kinema.jobs.keys import job_prefix
from kinema.jobs.store import JobStore
from kinema.runtime import Runtime
from kinema.types import GenerationRequest, Job, JobStatus, VideoResult, output_ref
from kinema.views import Creation
from tests.outputs_support import (
    FPS,
    NO_EXTENSION,
    SIZE,
    TINY,
    audio_of,
    frames_of,
    mean_difference,
    run_next,
    write_catalog,
)
from tests.support import data_uri, make_settings, pattern_image, probe

OWNER = "owner-a"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    settings = make_settings(tmp_path, catalog_path=write_catalog(tmp_path))
    built = Runtime.build(settings, workers=0)
    try:
        yield built
    finally:
        built.close()


def create(runtime: Runtime, owner: str = OWNER, **fields: Any) -> Job:
    fields.setdefault("size", SIZE)
    creation = Creation(model=fields.pop("model", TINY), fields=fields)
    return runtime.service.create(owner, "gemini", creation)


def remix_of(runtime: Runtime, owner: str, job_id: str, prompt: str) -> Job:
    creation = Creation(model="", fields={"prompt": prompt})
    return runtime.service.remix(owner, "openai", output_ref(job_id), creation)


def video(runtime: Runtime, output: VideoResult) -> bytes:
    return runtime.storage.get_bytes(output.video_key)


@pytest.fixture
def source(runtime: Runtime) -> Job:
    """A finished 2 s clip that pans right over a picture, with sound."""
    image = data_uri(pattern_image(640, 360, seed=3))
    create(runtime, prompt="pan right across the scene", image=image, duration=2, seed=11)
    job = run_next(runtime)
    assert job.status is JobStatus.SUCCEEDED, job.error_message
    return job


# --- several outputs ---


def test_sample_seeds_start_with_the_request_seed_and_repeat_for_it():
    seeds = sample_seeds(1234, 4)
    assert seeds[0] == 1234
    assert len(set(seeds)) == 4
    assert sample_seeds(1234, 4) == seeds
    assert sample_seeds(1235, 4)[1:] != seeds[1:]


def test_three_samples_are_three_distinct_valid_videos_each_with_a_thumbnail(runtime: Runtime):
    create(runtime, prompt="a harbour at dawn", sample_count=3, seed=5)
    job = run_next(runtime)

    assert job.status is JobStatus.SUCCEEDED, job.error_message
    assert len(job.outputs) == 3
    assert job.result == job.outputs[0]
    keys = {output.video_key for output in job.outputs}
    thumbnails = {output.thumbnail_key for output in job.outputs}
    assert len(keys) == 3 and len(thumbnails) == 3 and None not in thumbnails
    clips = [video(runtime, output) for output in job.outputs]
    for clip in clips:
        facts = probe(clip)
        assert (facts.width, facts.height, facts.frames) == (320, 180, FPS)
        assert facts.audio_codec == "aac"
    last_frames = [frames_of(clip)[-1] for clip in clips]
    assert mean_difference(last_frames[0], last_frames[1]) > 1.0
    assert mean_difference(last_frames[1], last_frames[2]) > 1.0
    assert runtime.store.summary(OWNER, job.id).outputs == job.outputs


def test_the_first_sample_renders_as_a_single_video_with_the_same_seed(runtime: Runtime):
    create(runtime, prompt="a harbour at dawn", sample_count=2, seed=5)
    several = run_next(runtime)
    create(runtime, prompt="a harbour at dawn", seed=5)
    single = run_next(runtime)

    first, second = (frames_of(video(runtime, output))[-1] for output in several.outputs)
    alone = frames_of(video(runtime, single.outputs[0]))[-1]
    assert len(single.outputs) == 1
    # The same pictures, up to the encoder's threads; the second sample is another clip.
    assert mean_difference(first, alone) < 1.5
    assert mean_difference(second, alone) > 4 * mean_difference(first, alone)


def test_more_samples_than_the_model_makes_is_refused_naming_the_field(runtime: Runtime):
    with pytest.raises(InvalidRequest) as caught:
        runtime.service.create(
            OWNER,
            "gemini",
            Creation(
                model=TINY,
                fields={"prompt": "p", "size": SIZE, "sample_count": 5},
                wire_names={"sample_count": "parameters.sampleCount"},
            ),
        )
    assert caught.value.problems[0].path == ("parameters.sampleCount",)
    assert "1 .. 4" in caught.value.problems[0].message


def test_store_keeps_every_output_in_order(engine):  # type: ignore[no-untyped-def]
    store = JobStore(engine)
    job, _ = store.submit(
        owner="o", request=GenerationRequest(model="m", prompt="p", duration_s=4), dialect="x"
    )
    claimed = store.claim_next(worker_id="w", lease_s=30)
    assert claimed is not None
    outputs = [
        VideoResult(f"jobs/{job.id}/video-1{suffix}.mp4", None, 320, 180, 12.0, 1.0, False, 10)
        for suffix in ("", "-1", "-2")
    ]
    store.succeed(job.id, claimed.attempt, outputs)

    assert store.get("o", job.id).outputs == tuple(outputs)
    assert store.get("o", job.id).result == outputs[0]
    assert store.summary("o", job.id).outputs == tuple(outputs)


# --- extension ---


def test_extension_is_the_source_then_the_new_seconds_starting_on_its_last_frame(
    runtime: Runtime, source: Job
):
    create(runtime, prompt="", video=output_ref(source.id), duration=1, seed=2)
    extended = run_next(runtime)

    assert extended.status is JobStatus.SUCCEEDED, extended.error_message
    assert extended.request.source_job_id == source.id
    assert extended.request.source_kind == "extend"
    data = video(runtime, extended.outputs[0])
    facts = probe(data)
    assert facts.frames == 3 * FPS  # 2 s of source + 1 s added
    assert facts.duration_s == pytest.approx(3.0, abs=0.05)
    assert facts.audio_duration_s == pytest.approx(3.0, abs=0.05)
    before = frames_of(video(runtime, source.outputs[0]))
    after = frames_of(data)
    seam = len(before)
    # The source is carried over as it was, and the new clip opens on its last frame.
    assert mean_difference(after[0], before[0]) < 3.0
    assert mean_difference(after[seam - 1], before[-1]) < 3.0
    assert mean_difference(after[seam], before[-1]) < 3.0
    # ... and moves on from there.
    assert mean_difference(after[-1], before[-1]) > 3.0


def test_extension_sound_runs_on_across_the_seam(runtime: Runtime, source: Job):
    create(runtime, prompt="", video=output_ref(source.id), duration=1, seed=2)
    extended = run_next(runtime)
    samples = audio_of(video(runtime, extended.outputs[0]))
    rate = len(samples) / 3.0
    original = audio_of(video(runtime, source.outputs[0]))

    seam = int(2.0 * rate)
    window = samples[seam - int(0.1 * rate) : seam + int(0.1 * rate)]
    assert float((window**2).mean()) ** 0.5 > 1e-3  # no gap at the join
    # The source's own sound is kept up to the seam.
    head = samples[: int(1.5 * rate)]
    correlation = float((head * original[: len(head)]).sum()) / float(
        ((head**2).sum() * (original[: len(head)] ** 2).sum()) ** 0.5
    )
    assert correlation > 0.9


def test_another_owners_video_is_not_found(runtime: Runtime, source: Job):
    with pytest.raises(NotFound):
        create(runtime, owner="owner-b", prompt="", video=output_ref(source.id), duration=1)
    with pytest.raises(NotFound):
        remix_of(runtime, "owner-b", source.id, "x")


def test_extension_past_the_models_limits_is_refused(runtime: Runtime, source: Job):
    # The test model extends videos of up to 4 s, into videos of up to 6 s.
    create(runtime, prompt="", video=output_ref(source.id), duration=4)
    six = run_next(runtime)
    create(runtime, prompt="", video=output_ref(source.id), duration=2)
    four = run_next(runtime)
    assert probe(video(runtime, six.outputs[0])).frames == 6 * FPS

    with pytest.raises(InvalidRequest, match="at most 4 s"):
        create(runtime, prompt="", video=output_ref(six.id), duration=1)
    with pytest.raises(InvalidRequest, match="6 s limit"):
        create(runtime, prompt="", video=output_ref(four.id), duration=4)
    create(runtime, prompt="", video=output_ref(four.id), duration=2)  # exactly 6 s is fine


def test_a_model_without_extensions_refuses_a_video(runtime: Runtime, source: Job):
    with pytest.raises(InvalidRequest, match="does not extend videos"):
        create(runtime, model=NO_EXTENSION, prompt="", video=output_ref(source.id), duration=1)


def test_an_inline_video_is_extended_like_a_stored_one(runtime: Runtime, source: Job):
    import base64

    inline = "data:video/mp4;base64," + base64.b64encode(video(runtime, source.outputs[0])).decode()
    create(runtime, prompt="", video=inline, duration=1)
    extended = run_next(runtime)

    assert extended.status is JobStatus.SUCCEEDED, extended.error_message
    assert extended.request.source_job_id is None
    assert probe(video(runtime, extended.outputs[0])).frames == 3 * FPS


def test_an_inline_file_that_is_not_a_video_is_refused(runtime: Runtime):
    with pytest.raises(InvalidRequest, match="not a readable video"):
        create(runtime, prompt="", video="data:video/mp4;base64,AAAAAAAA", duration=1)


def test_an_unfinished_video_cannot_be_extended(runtime: Runtime):
    queued = create(runtime, prompt="a harbour")
    with pytest.raises(InvalidRequest, match="queued"):
        create(runtime, prompt="", video=output_ref(queued.id), duration=1)


# --- chains ---


def test_extension_accepted_before_its_source_expired_still_runs(runtime: Runtime, source: Job):
    pending = create(runtime, prompt="", video=output_ref(source.id), duration=1)
    from datetime import UTC, datetime, timedelta

    assert source.id in runtime.store.expire_finished(datetime.now(UTC) + timedelta(days=1))
    runtime.storage.delete_prefix(job_prefix(source.id))

    extended = run_next(runtime)
    assert extended.id == pending.id
    assert extended.status is JobStatus.SUCCEEDED, extended.error_message
    assert probe(video(runtime, extended.outputs[0])).frames == 3 * FPS
    with pytest.raises(InvalidRequest, match="retention"):
        create(runtime, prompt="", video=output_ref(source.id), duration=1)


def test_extension_survives_its_source_being_deleted(runtime: Runtime, source: Job):
    create(runtime, prompt="", video=output_ref(source.id), duration=1)
    runtime.service.delete(OWNER, source.id)

    extended = run_next(runtime)
    assert extended.status is JobStatus.SUCCEEDED, extended.error_message


def test_cancelled_extension_leaves_its_source_whole_and_extendable(
    runtime: Runtime, source: Job
):
    create(runtime, prompt="", video=output_ref(source.id), duration=1)
    control = RunControl()
    control.cancelled.set()
    cancelled = run_next(runtime, control)
    assert cancelled.status is JobStatus.CANCELLED
    assert not any(
        key
        for key in (o.video_key for o in cancelled.outputs)
        if runtime.storage.local_path(key)
    )

    assert probe(video(runtime, source.outputs[0])).frames == 2 * FPS
    create(runtime, prompt="", video=output_ref(source.id), duration=1)
    assert run_next(runtime).status is JobStatus.SUCCEEDED


# --- remix ---


def test_remix_refilms_the_source_picture_with_a_new_prompt(runtime: Runtime, source: Job):
    remix = remix_of(runtime, OWNER, source.id, "tilt up to the sky")
    assert remix.request.source_job_id == source.id
    assert remix.request.source_kind == "remix"
    assert remix.request.duration_s == source.request.duration_s
    done = run_next(runtime)

    assert done.status is JobStatus.SUCCEEDED, done.error_message
    before = frames_of(video(runtime, source.outputs[0]))
    after = frames_of(video(runtime, done.outputs[0]))
    assert len(after) == len(before)
    assert mean_difference(after[0], before[0]) < 6.0  # the same picture...
    assert mean_difference(after[-1], before[-1]) > 12.0  # ... filmed another way
    stored = runtime.storage.get_bytes(str(done.request.image))
    assert stored.startswith(b"\x89PNG") or stored[:2] == b"\xff\xd8"


def test_remix_of_a_text_to_video_starts_from_its_first_frame(runtime: Runtime):
    create(runtime, prompt="a lighthouse at night")
    painted = run_next(runtime)
    remix_of(runtime, OWNER, painted.id, "push in on the lighthouse")
    done = run_next(runtime)

    assert done.status is JobStatus.SUCCEEDED, done.error_message
    first = frames_of(video(runtime, painted.outputs[0]))[0]
    again = frames_of(video(runtime, done.outputs[0]))[0]
    assert mean_difference(first, again) < 4.0
    assert io.BytesIO(runtime.storage.get_bytes(str(done.request.image))).read(4) == b"\x89PNG"


def test_an_uploaded_video_gives_its_first_frame_as_the_picture(runtime: Runtime, source: Job):
    import base64

    clip = video(runtime, source.outputs[0])
    uploaded = "data:video/mp4;base64," + base64.b64encode(clip).decode()
    create(runtime, prompt="push in", image=uploaded)
    done = run_next(runtime)

    assert done.status is JobStatus.SUCCEEDED, done.error_message
    first = frames_of(clip)[0]
    again = frames_of(video(runtime, done.outputs[0]))[0]
    assert mean_difference(first, again) < 6.0


def test_an_extension_of_an_extension_grows_the_chain(runtime: Runtime, source: Job):
    create(runtime, prompt="", video=output_ref(source.id), duration=1)
    once = run_next(runtime)
    create(runtime, prompt="", video=output_ref(once.id), duration=1)
    twice = run_next(runtime)

    assert twice.status is JobStatus.SUCCEEDED, twice.error_message
    assert twice.request.source_job_id == once.id
    assert twice.request.video_duration_s == pytest.approx(3.0)
    data = video(runtime, twice.outputs[0])
    assert probe(data).frames == 4 * FPS
    first = frames_of(video(runtime, source.outputs[0]))
    assert mean_difference(frames_of(data)[0], first[0]) < 4.0  # the chain keeps its start
