"""kinema in front of the open GPU video servers: jobs forwarded over the ``vllm_omni`` and
``sglang`` protocols to loopback emulations of their ``/v1/videos`` wire, clients speaking
kinema's own dialects (OpenAI's and Google's SDKs), every MP4 checked with PyAV."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kinema.engines.upstream.videoform import ServedModel
from tests.gpu_video_servers import VideoServer, video_server
from tests.support import live_server, make_settings, probe
from tests.upstream_gateway import DATA_URI, Gateway, LogTrap, poll, through_gemini, through_openai
from tests.upstream_support import (
    PROVIDER_KEY_ENV,
    forwarding_model,
    grey_engine,
    toml_text,
    upstream_engine,
    wait_until,
)

KEY = "gpu-server-key-42"
EXTRA = {"sample_solver": "unipc", "enable_cfg_parallel": False}


def _catalog(omni: VideoServer, sgl: VideoServer, cloud: VideoServer) -> str:
    engines: dict[str, Any] = {
        "omni": upstream_engine(
            "vllm_omni",
            omni.url,
            model="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            fps=24,
            frame_step=4,
            fields={"num_inference_steps": 40, "guidance_scale": 5.0},
            extra_params=EXTRA,
        ),
        "sgl": upstream_engine(
            "sglang",
            sgl.url,
            model="Wan-AI/Wan2.2-I2V-A14B-Diffusers",
            fps=16,
            frame_step=4,
            fields={"num_inference_steps": 4, "guidance_scale": 1.0},
        ),
        "sgl-cloud": upstream_engine("sglang", cloud.url, fps=16, allow_hosts=["localhost"]),
        "sgl-cloud-closed": upstream_engine("sglang", cloud.url, fps=16),
        "local": grey_engine(0.0),
    }
    models: dict[str, Any] = {}
    models |= forwarding_model("sora-2", model_id="wan-omni", dialect="openai", engine="omni")
    models |= forwarding_model(
        "veo-3.0-fast-generate-001", model_id="wan-omni-v1", dialect="v1", engine="omni"
    )
    models |= forwarding_model(
        "veo-3.1-fast-generate-preview", model_id="wan-sgl", dialect="gemini", engine="sgl"
    )
    models |= forwarding_model(
        "veo-3.0-fast-generate-001", model_id="wan-sgl-v1", dialect="v1", engine=["sgl", "local"]
    )
    for name in ("sgl-cloud", "sgl-cloud-closed"):
        models |= forwarding_model(
            "veo-3.0-fast-generate-001", model_id=name, dialect="v1", engine=name
        )
    return toml_text({"engines": engines, "models": models})


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Gateway, VideoServer, VideoServer]]:
    tmp_path = tmp_path_factory.mktemp("gpu-servers")
    with (
        video_server("vllm_omni") as omni,
        video_server("sglang", image_required=True) as sgl,
        video_server("sglang", cloud=True) as cloud,
    ):
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(_catalog(omni, sgl, cloud))
        os.environ[PROVIDER_KEY_ENV] = KEY
        settings = make_settings(tmp_path / "kinema", catalog_path=catalog)
        try:
            with live_server(settings, workers=2) as server:
                yield Gateway(None, None, server, LogTrap(), catalog), omni, sgl  # type: ignore[arg-type]
        finally:
            os.environ.pop(PROVIDER_KEY_ENV, None)


def test_seconds_become_the_served_models_frame_count_at_its_rate():
    assert ServedModel(fps=24, frame_step=4).frames(5) == 121  # Wan 2.2 TI2V 5B
    assert ServedModel(fps=16, frame_step=4).frames(5) == 81  # Wan 2.2 A14B
    assert ServedModel(fps=24, frame_step=8).frames(4) == 97  # LTX-Video
    assert ServedModel(fps=24, frame_step=8).frames(3) == 73


def test_vllm_omni_gets_the_form_its_code_reads_and_the_openai_sdk_gets_the_video(servers):
    gw, omni, _ = servers
    prompt = f"a red kite over the dunes {uuid.uuid4().hex[:6]}"

    video, content = through_openai(gw, "wan-omni", prompt)

    assert video["status"] == "completed"
    form = next(f for f in omni.forms if f["prompt"] == prompt)
    assert form["model"] == "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    assert (form["num_frames"], form["fps"], form["seconds"]) == ("97", "24", "4")
    assert form["size"] == "720x1280"  # the OpenAI ids' default size: portrait
    assert (form["num_inference_steps"], form["guidance_scale"]) == ("40", "5.0")
    assert form["extra_params"] == '{"sample_solver":"unipc","enable_cfg_parallel":false}'
    assert omni.images[-1].size == (720, 1280)  # the landscape frame, fitted to the size
    assert omni.headers[-1]["authorization"] == f"Bearer {KEY}"
    facts = probe(content)
    assert (facts.width, facts.height, facts.frames) == (720, 1280, 97)


def test_sglang_serves_a_gemini_sdk_client_at_the_models_own_rate(servers):
    gw, _, sgl = servers
    before = len(sgl.forms)

    _, video = through_gemini(gw, "wan-sgl", "a lighthouse in a storm")

    form = sgl.forms[before]
    assert (form["num_frames"], form["fps"], form["size"]) == ("65", "16", "1280x720")
    assert form["model"] == "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
    assert "extra_params" not in form
    facts = probe(video)
    assert (facts.width, facts.height, facts.frames) == (1280, 720, 65)


def test_an_sglang_refusal_reaches_the_client_with_its_message(servers):
    gw, _, _ = servers
    with gw.server.client() as client:
        created = client.post(
            "/v1/video/generations",
            json={"model": "wan-sgl-v1", "prompt": "text alone", "seconds": 4},
        )
        assert created.status_code == 200, created.text
        body = poll(
            lambda: client.get(f"/v1/video/generations/{created.json()['id']}").json(),
            lambda b: b["status"] in ("succeeded", "failed"),
        )
    assert body["status"] == "failed"
    assert "input_reference or reference_url is required" in str(body)


def test_a_failed_sglang_job_falls_back_to_the_next_engine(servers):
    gw, _, sgl = servers
    prompt = f"please fail {uuid.uuid4().hex[:6]}"
    with gw.server.client() as client:
        created = client.post(
            "/v1/video/generations",
            json={"model": "wan-sgl-v1", "prompt": prompt, "images": [DATA_URI], "seconds": 4},
        )
        body = poll(
            lambda: client.get(f"/v1/video/generations/{created.json()['id']}").json(),
            lambda b: b["status"] in ("succeeded", "failed"),
        )
        video = client.get(body["url"]).content
    assert body["status"] == "succeeded", body
    assert any(f["prompt"] == prompt for f in sgl.forms)  # tried there first
    assert any(
        j.get("error", {}).get("message", "").startswith("CUDA out of memory")
        for j in sgl.jobs.values()
    )
    assert probe(video).frames > 0  # made by the local engine


def test_a_cancel_is_forwarded_to_vllm_omni_as_a_delete(servers):
    gw, omni, _ = servers
    prompt = f"slow waves {uuid.uuid4().hex[:6]}"
    with gw.server.client() as client:
        created = client.post(
            "/v1/video/generations",
            json={"model": "wan-omni-v1", "prompt": prompt, "images": [DATA_URI], "seconds": 4},
        )
        task = created.json()["id"]
        job = wait_until(
            lambda: next((j for j in omni.jobs.values() if j["prompt"] == prompt), None),
            30,
            "the job to reach vLLM-Omni",
        )
        client.post(f"/v1/video/generations/{task}/cancel")
        body = poll(
            lambda: client.get(f"/v1/video/generations/{task}").json(),
            lambda b: b["status"] in ("succeeded", "failed", "cancelled"),
        )
    assert body["status"] == "cancelled"
    wait_until(lambda: job["id"] in omni.deleted, 30, "the DELETE to reach vLLM-Omni")


def test_the_emulated_sync_endpoint_answers_the_video_bytes(servers):
    """/v1/videos/sync (which kinema does not use: see the protocol's docstring) answers raw
    MP4 bytes for the same form: the emulation speaks the whole documented wire."""
    import httpx

    _, omni, _ = servers
    form = {"prompt": (None, "a cat"), "size": (None, "64x32"), "num_frames": (None, "9")}
    answer = httpx.post(omni.url + "/v1/videos/sync", files=form, timeout=60)
    assert answer.status_code == 200
    assert probe(answer.content).frames == 9
    bad = httpx.post(omni.url + "/v1/videos/sync", files={"seconds": (None, "0")}, timeout=60)
    assert bad.status_code == 422


def test_gpu_server_protocol_keys_are_checked_when_the_catalog_loads(tmp_path: Path):
    from kinema.catalog import Catalog

    engines = {"o": {"kind": "upstream", "protocol": "vllm_omni", "base_url": "http://h:1"}}
    engines["o"]["fields"] = {"guidance_scale": [1, 2]}
    with pytest.raises(ValueError, match=r"engine 'o': 'fields' must be a table of strings"):
        Catalog.from_dict({"engines": engines, "models": {}})


def _through_v1(gw: Gateway, model: str) -> tuple[dict[str, Any], bytes]:
    with gw.server.client() as client:
        created = client.post(
            "/v1/video/generations",
            json={"model": model, "prompt": "a harbour", "images": [DATA_URI], "seconds": 4},
        )
        body = poll(
            lambda: client.get(f"/v1/video/generations/{created.json()['id']}").json(),
            lambda b: b["status"] in ("succeeded", "failed"),
        )
        video = client.get(body["url"]).content if body["status"] == "succeeded" else b""
    return body, video


def test_an_sglang_video_in_cloud_storage_comes_from_its_url_where_allowed(servers):
    gw, _, _ = servers

    allowed, video = _through_v1(gw, "sgl-cloud")
    closed, _ = _through_v1(gw, "sgl-cloud-closed")

    assert allowed["status"] == "succeeded", allowed
    assert probe(video).frames == 65  # 4 s at 16 fps: fetched from the url's host
    assert closed["status"] == "failed"
    assert "video link refused" in str(closed)
