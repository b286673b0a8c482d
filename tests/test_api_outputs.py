"""Several videos per request, extensions and remixes through real HTTP and the real SDKs.

One server serves every test here with the small catalog of ``outputs_support`` (its Veo
id renders 320x180 at 12 fps where the wire can ask for that size, 1280x720 otherwise).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from google import genai
from google.genai import types
from openai import OpenAI, omit

from tests.outputs_support import (
    FPS,
    NO_EXTENSION,
    SIZE,
    TINY,
    frames_of,
    mean_difference,
    write_catalog,
)
from tests.scale_support import moto_server
from tests.support import LiveServer, encode_image, live_server, make_settings, pattern_image, probe

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("outputs")
    settings = make_settings(root, catalog_path=write_catalog(root))
    with live_server(settings, workers=2) as live:
        yield live


@pytest.fixture(scope="module")
def gemini(server: LiveServer) -> Iterator[genai.Client]:
    with genai.Client(api_key=server.api_key, http_options={"base_url": server.url}) as client:
        yield client


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> OpenAI:
    return OpenAI(api_key=server.api_key, base_url=server.url + "/v1", timeout=60)


def finish(
    client: genai.Client, operation: types.GenerateVideosOperation
) -> list[types.GeneratedVideo]:
    deadline = time.monotonic() + 120
    while not operation.done:
        assert time.monotonic() < deadline, "operation did not finish"
        time.sleep(0.1)
        operation = client.operations.get(operation)
    assert operation.error is None, operation.error
    assert operation.response is not None and operation.response.generated_videos
    return list(operation.response.generated_videos)


@pytest.fixture(scope="module")
def pair(gemini: genai.Client) -> list[types.GeneratedVideo]:
    """Two 1 s samples of one Gemini request (720p: the Gemini wire sends no size)."""
    picture = encode_image(pattern_image(640, 360, seed=4))
    operation = gemini.models.generate_videos(
        model=TINY,
        source=types.GenerateVideosSource(
            prompt="pan right across the harbour",
            image=types.Image(image_bytes=picture, mime_type="image/png"),
        ),
        config=types.GenerateVideosConfig(number_of_videos=2, duration_seconds=1),
    )
    return finish(gemini, operation)


# --- several outputs ---


def test_gemini_sdk_number_of_videos_gives_that_many_distinct_videos(
    gemini: genai.Client, pair: list[types.GeneratedVideo]
):
    assert len(pair) == 2
    uris = {generated.video.uri for generated in pair if generated.video}
    assert len(uris) == 2
    clips = [gemini.files.download(file=generated) for generated in pair]
    for clip in clips:
        facts = probe(clip)
        assert (facts.width, facts.height, facts.frames) == (1280, 720, FPS)
        assert facts.audio_codec == "aac"
    assert clips[0] != clips[1]
    assert mean_difference(frames_of(clips[0])[-1], frames_of(clips[1])[-1]) > 1.0


def test_gemini_sample_count_over_the_models_limit_names_the_field(server: LiveServer):
    body = {"instances": [{"prompt": "x"}], "parameters": {"sampleCount": 5}}
    with httpx.Client(base_url=server.url, headers={"x-goog-api-key": server.api_key}) as http:
        response = http.post(f"/v1beta/models/{TINY}:predictLongRunning", json=body)
    assert response.status_code == 400, response.text
    assert "parameters.sampleCount" in response.json()["error"]["message"]


# --- extension ---


def test_gemini_sdk_extends_a_video_it_made(
    gemini: genai.Client, pair: list[types.GeneratedVideo]
):
    source = gemini.files.download(file=pair[1])
    assert pair[1].video is not None
    operation = gemini.models.generate_videos(
        model=TINY,
        source=types.GenerateVideosSource(prompt="", video=types.Video(uri=pair[1].video.uri)),
        config=types.GenerateVideosConfig(duration_seconds=2),
    )
    (extended,) = finish(gemini, operation)
    data = gemini.files.download(file=extended)

    facts = probe(data)
    assert facts.frames == 3 * FPS  # the 1 s source, then 2 s more
    assert facts.duration_s == pytest.approx(3.0, abs=0.05)
    assert facts.audio_duration_s == pytest.approx(3.0, abs=0.05)
    before, after = frames_of(source), frames_of(data)
    assert mean_difference(after[len(before) - 1], before[-1]) < 3.0
    assert mean_difference(after[len(before)], before[-1]) < 3.0  # continues from its end
    assert mean_difference(after[-1], before[-1]) > 3.0


def test_gemini_rest_extends_an_inline_video(
    server: LiveServer, gemini: genai.Client, pair: list[types.GeneratedVideo]
):
    clip = gemini.files.download(file=pair[0])
    video = {"encodedVideo": base64.b64encode(clip).decode(), "encoding": "video/mp4"}
    body = {"instances": [{"video": video}], "parameters": {"durationSeconds": 1}}
    with httpx.Client(base_url=server.url, headers={"x-goog-api-key": server.api_key}) as http:
        response = http.post(f"/v1beta/models/{TINY}:predictLongRunning", json=body)
        assert response.status_code == 200, response.text
        name = response.json()["name"]
        deadline = time.monotonic() + 60
        while not (operation := http.get(f"/v1beta/{name}").json()).get("done"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        (sample,) = operation["response"]["generateVideoResponse"]["generatedSamples"]
        data = http.get(sample["video"]["uri"]).content
    assert probe(data).frames == 2 * FPS


def test_gemini_another_keys_video_is_not_found(
    server: LiveServer, pair: list[types.GeneratedVideo]
):
    other = server.new_key("stranger")
    assert pair[0].video is not None and pair[0].video.uri is not None
    body = {"instances": [{"video": {"uri": pair[0].video.uri}}]}
    with httpx.Client(base_url=server.url, headers={"x-goog-api-key": other}) as http:
        response = http.post(f"/v1beta/models/{TINY}:predictLongRunning", json=body)
        download = http.get(pair[0].video.uri)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["status"] == "NOT_FOUND"
    assert download.status_code == 404


def test_gemini_model_without_extensions_refuses_a_video(
    server: LiveServer, pair: list[types.GeneratedVideo]
):
    assert pair[0].video is not None
    body = {"instances": [{"video": {"uri": pair[0].video.uri}}]}
    with httpx.Client(base_url=server.url, headers={"x-goog-api-key": server.api_key}) as http:
        response = http.post(f"/v1beta/models/{NO_EXTENSION}:predictLongRunning", json=body)
    assert response.status_code == 400, response.text
    assert "instances[0].video" in response.json()["error"]["message"]


# --- OpenAI: extensions, remix, edits ---


@pytest.fixture(scope="module")
def landscape(oai: OpenAI) -> openai.types.Video:
    reference = ("first.png", encode_image(pattern_image(640, 360, seed=6)), "image/png")
    return oai.videos.create_and_poll(
        model=TINY,
        prompt="pan left along the shore",
        seconds="2",  # type: ignore[arg-type]
        size=SIZE,  # type: ignore[arg-type]
        input_reference=reference,
        poll_interval_ms=100,
    )


def wait(oai: OpenAI, video: openai.types.Video) -> openai.types.Video:
    deadline = time.monotonic() + 60
    while video.status in ("queued", "in_progress"):
        assert time.monotonic() < deadline, "video did not finish"
        time.sleep(0.1)
        video = oai.videos.retrieve(video.id)
    return video


def test_openai_sdk_extend_returns_the_joined_video(oai: OpenAI, landscape: openai.types.Video):
    assert landscape.status == "completed", landscape.error
    # The SDK refuses a {"id"} dict for ``video`` client-side (it expects a file there),
    # so a video id goes as the form field ``video[id]`` through ``extra_body``.
    started = oai.videos.extend(
        prompt="keep going",
        seconds="1",  # type: ignore[arg-type]
        video=omit,
        extra_body={"video[id]": landscape.id},
    )
    extended = wait(oai, started)
    assert extended.status == "completed", extended.error
    assert extended.seconds == "3"  # the joined length, as OpenAI reports extensions
    source = oai.videos.download_content(landscape.id).read()
    data = oai.videos.download_content(extended.id).read()
    assert probe(data).frames == 3 * FPS
    before, after = frames_of(source), frames_of(data)
    assert mean_difference(after[len(before)], before[-1]) < 3.0


def test_openai_sdk_remix_refilms_the_picture_with_a_new_prompt(
    oai: OpenAI, landscape: openai.types.Video
):
    remix = oai.videos.remix(landscape.id, prompt="tilt up to the clouds")
    assert remix.remixed_from_video_id == landscape.id
    remix = wait(oai, remix)
    assert remix.status == "completed", remix.error
    assert remix.seconds == landscape.seconds and remix.size == landscape.size
    before = frames_of(oai.videos.download_content(landscape.id).read())
    after = frames_of(oai.videos.download_content(remix.id).read())
    assert mean_difference(after[0], before[0]) < 6.0
    assert mean_difference(after[-1], before[-1]) > 12.0


def test_openai_sdk_edit_of_a_video_id_and_of_an_upload(
    oai: OpenAI, landscape: openai.types.Video
):
    by_id = oai.videos.edit(prompt="push in", video=omit, extra_body={"video[id]": landscape.id})
    assert by_id.remixed_from_video_id == landscape.id
    by_id = wait(oai, by_id)
    assert by_id.status == "completed", by_id.error
    upload = ("clip.mp4", oai.videos.download_content(landscape.id).read(), "video/mp4")
    edit = oai.videos.edit(prompt="push in", video=upload, extra_body={"model": TINY})
    uploaded = wait(oai, edit)
    assert uploaded.status == "completed", uploaded.error
    assert uploaded.remixed_from_video_id is None


def test_openai_another_keys_video_is_refused_everywhere(
    server: LiveServer, landscape: openai.types.Video
):
    stranger = OpenAI(api_key=server.new_key("stranger-2"), base_url=server.url + "/v1")
    by_id = {"video[id]": landscape.id}
    with pytest.raises(openai.NotFoundError):
        stranger.videos.extend(prompt="x", seconds="1", video=omit, extra_body=by_id)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        stranger.videos.remix(landscape.id, prompt="x")
    with pytest.raises(openai.NotFoundError):
        stranger.videos.edit(prompt="x", video=omit, extra_body=by_id)


def test_openai_characters_are_a_clear_400(server: LiveServer, oai: OpenAI):
    with pytest.raises(openai.BadRequestError) as created:
        oai.videos.create_character(name="Ada", video=("a.mp4", b"\x00" * 16, "video/mp4"))
    assert "character" in created.value.message.lower()
    with server.client() as http:
        fetched = http.get("/v1/videos/characters/char_123")
    assert fetched.status_code == 400, fetched.text
    error = fetched.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"


# --- Vertex AI: samples inline, extension of a video the SDK holds ---


@pytest.fixture(scope="module")
def vertex(server: LiveServer) -> Iterator[genai.Client]:
    options = types.HttpOptions(base_url=server.url)
    with genai.Client(vertexai=True, api_key=server.api_key, http_options=options) as client:
        yield client


def test_vertex_sdk_number_of_videos_and_video_extension(vertex: genai.Client):
    picture = encode_image(pattern_image(640, 360, seed=8))
    operation = vertex.models.generate_videos(
        model=TINY,
        source=types.GenerateVideosSource(
            prompt="tilt up over the rooftops",
            image=types.Image(image_bytes=picture, mime_type="image/png"),
        ),
        config=types.GenerateVideosConfig(number_of_videos=3, duration_seconds=1),
    )
    samples = finish(vertex, operation)
    clips = [generated.video.video_bytes for generated in samples if generated.video]
    assert len(clips) == 3 and all(clips)
    assert len(set(clips)) == 3
    for clip in clips:
        assert clip is not None and probe(clip).frames == FPS

    source = samples[2].video
    assert source is not None
    extension = vertex.models.generate_videos(
        model=TINY,
        source=types.GenerateVideosSource(video=source),
        config=types.GenerateVideosConfig(duration_seconds=2),
    )
    (extended,) = finish(vertex, extension)
    assert extended.video is not None and extended.video.video_bytes is not None
    data = extended.video.video_bytes
    assert probe(data).frames == 3 * FPS
    before, after = frames_of(clips[2] or b""), frames_of(data)
    assert mean_difference(after[FPS], before[-1]) < 3.0


def test_openai_extend_takes_an_upload_and_a_json_body(
    server: LiveServer, oai: OpenAI, landscape: openai.types.Video
):
    clip = oai.videos.download_content(landscape.id).read()
    uploaded = oai.videos.extend(
        prompt="",
        seconds="1",  # type: ignore[arg-type]
        video=("clip.mp4", clip, "video/mp4"),
        extra_body={"model": TINY},
    )
    assert wait(oai, uploaded).status == "completed"
    assert probe(oai.videos.download_content(uploaded.id).read()).frames == 3 * FPS

    with server.client() as http:
        body = {"prompt": "", "seconds": "1", "video": {"id": landscape.id}}
        created = http.post("/v1/videos/extensions", json=body)
        assert created.status_code == 200, created.text
        assert created.json()["seconds"] == "3"
        missing = http.post("/v1/videos/extensions", json={"prompt": "", "seconds": "1"})
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "video"


# --- the other dialects: extend_from, and every sample listed ---


def poll(http: httpx.Client, path: str, params: dict[str, str] | None = None) -> dict:
    deadline = time.monotonic() + 60
    while True:
        body = http.get(path, params=params).json()
        if body["status"] not in ("queued", "generating", "pending", "processing", "in_progress"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def test_aimlapi_extend_from_and_the_list_of_videos(
    server: LiveServer, pair: list[types.GeneratedVideo]
):
    picture = "data:image/png;base64," + base64.b64encode(
        encode_image(pattern_image(320, 180, seed=9))
    ).decode()
    with server.client() as http:
        body = {"model": TINY, "prompt": "pan left", "image_url": picture, "duration": 1}
        source = http.post("/v2/video/generations", json=body).json()
        source = poll(http, "/v2/video/generations", {"generation_id": source["id"]})
        assert source["status"] == "completed", source
        assert [v["url"] for v in source["videos"]] == [source["video"]["url"]]
        body = {"model": TINY, "prompt": "", "extend_from": source["id"], "duration": 1}
        created = http.post("/v2/video/generations", json=body)
        assert created.status_code == 200, created.text
        extended = poll(http, "/v2/video/generations", {"generation_id": created.json()["id"]})
        assert extended["status"] == "completed", extended
        assert extended["video"]["duration"] == pytest.approx(2.0)
        assert probe(http.get(extended["video"]["url"]).content).frames == 2 * FPS

        # A two-sample job made through the Gemini API, read through this one.
        assert pair[0].video is not None and pair[0].video.uri is not None
        job_id = pair[0].video.uri.rpartition("files/")[2].partition(":")[0]
        generation_id = str(uuid.UUID(hex=job_id))
        both = http.get("/v2/video/generations", params={"generation_id": generation_id})
        assert len(both.json()["videos"]) == 2
        # ... and each has its own spritesheet (OpenAI content, kinema's ``index``).
        sheets = [
            http.get(
                f"/v1/videos/video_{job_id}/content",
                params={"variant": "spritesheet", "index": index},
            )
            for index in (0, 1, 2)
        ]
        assert [sheet.status_code for sheet in sheets] == [200, 200, 404]
        assert sheets[0].content[:2] == sheets[1].content[:2] == b"\xff\xd8"
        assert sheets[0].content != sheets[1].content
    stranger = server.client(server.new_key("stranger-3"))
    with stranger:
        refused = stranger.post("/v2/video/generations", json=body)
    assert refused.status_code == 404, refused.text
    assert refused.json()["statusCode"] == 404


def test_v1_and_unified_extend_from(server: LiveServer):
    with server.client() as http:
        body = {"model": TINY, "prompt": "tilt down", "seconds": 1}
        task = http.post("/v1/video/generations", json=body).json()
        task = poll(http, f"/v1/video/generations/{task['id']}")
        assert task["status"] == "succeeded", task
        assert [v["url"] for v in task["videos"]] == [task["url"]]
        created = http.post(
            "/v1/video/generations",
            json={"model": TINY, "prompt": "", "seconds": 1, "extend_from": task["id"]},
        )
        assert created.status_code == 200, created.text
        extended = poll(http, f"/v1/video/generations/{created.json()['id']}")
        assert extended["status"] == "succeeded", extended
        assert extended["metadata"]["duration"] == pytest.approx(2.0)

        unified = http.post(
            "/v1/videos/generations",
            json={"model": TINY, "prompt": "pan", "image_url": body_image(), "duration": 1},
        ).json()
        unified = poll(http, f"/v1/tasks/{unified['id']}")
        assert unified["status"] == "completed", unified
        again = http.post(
            "/v1/videos/generations",
            json={"model": TINY, "prompt": "", "duration": 1, "extend_from": unified["id"]},
        )
        assert again.status_code == 200, again.text
        done = poll(http, f"/v1/tasks/{again.json()['id']}")
        assert done["status"] == "completed", done
        (url,) = done["results"]
        assert probe(http.get(url).content).frames == 2 * FPS


def body_image() -> str:
    png = encode_image(pattern_image(320, 180, seed=10))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def test_openai_remix_keeps_the_sources_length_and_model(
    server: LiveServer, landscape: openai.types.Video
):
    with server.client() as http:
        longer = http.post(f"/v1/videos/{landscape.id}/remix", json={"prompt": "x", "seconds": "4"})
        other = http.post(f"/v1/videos/{landscape.id}/remix", json={"prompt": "x", "model": "m"})
        missing = http.post("/v1/videos/video_" + "0" * 32 + "/remix", json={"prompt": "x"})
    for refused, param in ((longer, "seconds"), (other, "model")):
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == param
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"


def test_vertex_storage_uri_copies_each_video_under_the_callers_folder(tmp_path: Path):
    """With S3 storage, through the SDK in project mode: each sample is copied to
    ``{storageUri}/{operation id}/sample_{n}.mp4`` (what Vertex AI writes), the operation
    answers those URIs, and one names the video to extend; the job's own object URI does
    too. Another key's copy is refused, and deleting the job leaves the copies."""
    from google.oauth2.credentials import Credentials

    folder = "s3://videos/kinema/clips/run-1"
    with moto_server() as s3:
        s3.create_bucket("videos")
        bucket = s3.client()
        settings = make_settings(
            tmp_path,
            catalog_path=write_catalog(tmp_path),
            storage_url=s3.url("videos", "kinema"),
        )
        with live_server(settings) as live:
            sdk = genai.Client(
                vertexai=True,
                project="media-team",
                location="europe-west4",
                credentials=Credentials(token=live.api_key),
                http_options=types.HttpOptions(base_url=live.url),
            )
            picture = encode_image(pattern_image(640, 360, seed=3))
            operation = sdk.models.generate_videos(
                model=TINY,
                source=types.GenerateVideosSource(
                    prompt="pan left", image=types.Image(image_bytes=picture, mime_type="image/png")
                ),
                config=types.GenerateVideosConfig(
                    number_of_videos=2, duration_seconds=1, output_gcs_uri=folder
                ),
            )
            assert operation.name is not None
            job_id = operation.name.rpartition("/operations/")[2]
            samples = finish(sdk, operation)
            uris = [generated.video.uri for generated in samples if generated.video]
            job = live.runtime.store.get_any(job_id)
            own = [
                bucket.get_object(Bucket="videos", Key=f"kinema/{output.video_key}")
                for output in job.outputs
            ]

            extension = sdk.models.generate_videos(
                model=TINY,
                source=types.GenerateVideosSource(video=types.Video(uri=uris[1])),
                config=types.GenerateVideosConfig(duration_seconds=1, output_gcs_uri=folder),
            )
            (extended,) = finish(sdk, extension)
            by_own_uri = sdk.models.generate_videos(
                model=TINY,
                source=types.GenerateVideosSource(
                    video=types.Video(uri=f"s3://videos/kinema/{job.outputs[0].video_key}")
                ),
                config=types.GenerateVideosConfig(duration_seconds=1),
            )
            (from_own,) = finish(sdk, by_own_uri)
            scope = "v1beta1/projects/media-team/locations/europe-west4/publishers/google/models"
            stranger = httpx.post(
                f"{live.url}/{scope}/{TINY}:predictLongRunning",
                json={"instances": [{"video": {"gcsUri": uris[0]}}]},
                headers={"Authorization": f"Bearer {live.new_key('s3-other')}"},
                timeout=60,
            )
            forged = uris[0].replace("sample_0", "sample_1").replace("run-1", "run-2")
            not_a_copy = httpx.post(
                f"{live.url}/{scope}/{TINY}:predictLongRunning",
                json={"instances": [{"video": {"gcsUri": forged}}]},
                headers={"Authorization": f"Bearer {live.api_key}"},
                timeout=60,
            )
            live.runtime.service.delete(job.owner, job_id)
            sdk.close()

        assert uris == [f"{folder}/{job_id}/sample_{index}.mp4" for index in range(2)]
        copies = [
            bucket.get_object(Bucket="videos", Key=uri.removeprefix("s3://videos/"))
            for uri in uris
        ]
        assert [c["Body"].read() for c in copies] == [o["Body"].read() for o in own]
        assert all(c["ContentType"] == "video/mp4" for c in copies)
        assert not bucket.list_objects_v2(Bucket="videos", Prefix=f"kinema/jobs/{job_id}/").get(
            "Contents"
        )  # the job's own directory went with it; the copies stay
        assert extended.video is not None and extended.video.uri is not None
        joined_key = extended.video.uri.removeprefix("s3://videos/")
        assert joined_key.startswith("kinema/clips/run-1/")
        joined = bucket.get_object(Bucket="videos", Key=joined_key)["Body"].read()
    assert probe(joined).frames == 2 * FPS
    assert from_own.video is not None and from_own.video.video_bytes is not None
    assert probe(from_own.video.video_bytes).frames == 2 * FPS
    assert stranger.status_code == 404, stranger.text
    assert not_a_copy.status_code == 400, not_a_copy.text
    assert "gcsUri" in not_a_copy.json()["error"]["message"]


def test_vertex_refuses_storage_uris_outside_a_folder_it_may_write(tmp_path: Path):
    """Folders outside kinema's bucket and prefix, inside the folders it writes itself,
    or not plain paths are 400s naming the field, never repeating a long URI."""
    with moto_server() as s3:
        s3.create_bucket("videos")
        settings = make_settings(
            tmp_path,
            catalog_path=write_catalog(tmp_path),
            storage_url=s3.url("videos", "kinema"),
        )
        with live_server(settings) as live:
            headers = {"x-goog-api-key": live.api_key}
            path = f"/v1beta1/publishers/google/models/{TINY}:predictLongRunning"
            with httpx.Client(base_url=live.url, headers=headers, timeout=60) as http:
                answers = {
                    uri: http.post(
                        path,
                        json={
                            "instances": [{"prompt": "pan"}],
                            "parameters": {"durationSeconds": 1, "storageUri": uri},
                        },
                    )
                    for uri in (
                        "s3://videos/elsewhere/",
                        "s3://videos/kinema/jobs/",
                        "s3://videos/kinema/a//b/",
                        "s3://videos/kinema/a/../b/",
                        "s3://videos/kinema/" + "x" * 5000,
                    )
                }
    for uri, answer in answers.items():
        assert answer.status_code == 400, (uri, answer.text)
        error = answer.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT"
        assert error["details"][0]["fieldViolations"][0]["field"] == "parameters.storageUri"
        assert len(answer.text) < 2000
