"""``kinema pull`` against a loopback hub, and the GPU profile serving Veo ids from what it
pulled: real ``huggingface_hub`` downloads (HF_ENDPOINT), a real server, Google's SDK."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from safetensors.torch import save_file

from kinema.engines.config import EngineConfig
from kinema.engines.diffusion.local_weights import downloads, resolve
from kinema.profiles import gpu_profile
from tests.fake_hub import FakeHub, fake_hub
from tests.support import encode_image, live_server, make_settings, pattern_image, probe
from tests.tiny_pipelines import BUILDERS

pytest.importorskip("diffusers")

REPO = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
BIG_REPO = "lightx2v/Wan2.2-Lightning"
BIG_FILE = "Seko-V1/high_noise_model.safetensors"
TRANSFORMER = "transformer/diffusion_pytorch_model.safetensors"
ROOT = Path(__file__).resolve().parents[1]

GPU_CATALOG = f"""
[engines.motion]
kind = "motion"
fps = 24

[engines.tiny-ti2v]
kind = "wan_ti2v"
fps = 8
repo = "{REPO}"
audio = "motion"
steps = 2
sizes = ["64x32", "32x64"]
max_sequence_length = 16

[engines.lightning-files]
kind = "wan_i2v"
fps = 16
weights = "/srv/own-copy/Wan2.2-I2V-A14B"  # a directory of its own: nothing to pull
lora = {{ repo = "{BIG_REPO}", weight_name = "{BIG_FILE}" }}

[[profile.veo]]
engine = "tiny-ti2v"
min_gpu_memory_gb = 20
durations = [4]
resolutions = ["720p"]
"""


@pytest.fixture(scope="module")
def hub_repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub")
    BUILDERS["wan_ti2v"]().save_pretrained(root / "ti2v")
    big = root / "lightning" / BIG_FILE
    big.parent.mkdir(parents=True)
    # 24 MiB: more than huggingface_hub's 10 MiB read size, so a cut after half of it comes
    # after a whole chunk was written and the download continues from there.
    import torch

    save_file({"w": torch.arange(6 * 2**20, dtype=torch.float32)}, str(big))
    return {REPO: root / "ti2v", BIG_REPO: root / "lightning"}


@pytest.fixture
def hub(hub_repos: dict[str, Path]) -> Iterator[FakeHub]:
    with fake_hub(hub_repos) as served:
        yield served


def pull(
    hub: FakeHub, tmp_path: Path, name: str, *extra: str, **env: str
) -> subprocess.CompletedProcess[str]:
    catalog = tmp_path / "gpu.toml"
    catalog.write_text(GPU_CATALOG)
    environ = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    environ |= {"HF_ENDPOINT": hub.url, "PYTHONPATH": str(ROOT / "src"), **env}
    command = [sys.executable, "-m", "kinema", "pull", name, "--catalog", str(catalog)]
    command += ["--models-dir", str(tmp_path / "models"), *extra]
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=300)


def test_pull_fetches_every_file_of_the_repository_into_the_models_directory(
    hub: FakeHub, tmp_path: Path
):
    done = pull(hub, tmp_path, "tiny-ti2v")

    assert done.returncode == 0, done.stderr
    target = tmp_path / "models" / REPO
    for name, source in hub.files(REPO).items():
        assert (target / name).read_bytes() == source.read_bytes(), name
    assert "GiB to fetch" in done.stderr  # the size check ran and said what it found
    assert any(s.path == f"/api/models/{REPO}/revision/main" for s in hub.seen)


def test_a_dropped_connection_continues_from_the_byte_it_reached(hub: FakeHub, tmp_path: Path):
    hub.cut[BIG_FILE] = 1  # the first GET sends half the file, then closes the connection

    done = pull(hub, tmp_path, "lightning-files")

    assert done.returncode == 0, done.stderr
    gets = hub.gets(BIG_FILE)
    assert gets[0].range is None
    assert len(gets) == 2 and gets[1].range is not None
    start = int(gets[1].range.removeprefix("bytes=").split("-")[0])
    assert start > 0  # continued, not started over
    source = hub.files(BIG_REPO)[BIG_FILE].read_bytes()
    assert (tmp_path / "models" / BIG_REPO / BIG_FILE).read_bytes() == source
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["lightx2v"]


def test_a_second_pull_fetches_only_what_the_first_left(hub: FakeHub, tmp_path: Path):
    hub.broken.add(TRANSFORMER)
    first = pull(hub, tmp_path, "tiny-ti2v")
    assert first.returncode == 1
    assert f"downloading {REPO} failed" in first.stderr
    fetched_first = {s.path for s in hub.seen if s.method == "GET" and "/resolve/" in s.path}

    hub.broken.clear()
    hub.seen.clear()
    second = pull(hub, tmp_path, "tiny-ti2v")

    assert second.returncode == 0, second.stderr
    fetched_second = {s.path for s in hub.seen if s.method == "GET" and "/resolve/" in s.path}
    assert any(path.endswith(TRANSFORMER) for path in fetched_second)
    done_first = {p for p in fetched_first if not p.endswith(TRANSFORMER)}
    assert done_first and not (done_first & fetched_second)  # kept, not fetched again
    assert "file(s)" in second.stderr


def test_pull_refuses_when_the_disk_would_keep_less_than_the_reserve(hub: FakeHub, tmp_path: Path):
    done = pull(hub, tmp_path, "tiny-ti2v", "--reserve-gb", "1000000000")

    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert f"{REPO} needs" in message and "GiB free" in message and "KINEMA_MODELS_DIR" in message
    assert not [s for s in hub.seen if s.method == "GET" and "/resolve/" in s.path]
    assert not (tmp_path / "models" / REPO / TRANSFORMER).exists()


def test_pull_says_so_when_hf_hub_offline_is_set(hub: FakeHub, tmp_path: Path):
    done = pull(hub, tmp_path, "tiny-ti2v", HF_HUB_OFFLINE="1")

    assert done.returncode == 1
    assert "HF_HUB_OFFLINE" in done.stderr
    assert not hub.seen


def test_pull_names_the_engines_it_knows_for_an_unknown_name(hub: FakeHub, tmp_path: Path):
    done = pull(hub, tmp_path, "wan-nine")

    assert done.returncode == 1
    assert "tiny-ti2v" in done.stderr and "lightning-files" in done.stderr


# --- the GPU profile: Veo ids served from what was pulled -----------------------------------


def test_the_gpu_profile_serves_a_veo_id_from_the_pulled_engine_to_googles_sdk(
    hub_repos: dict[str, Path], tmp_path: Path
):
    from google import genai
    from google.genai import types

    with fake_hub(hub_repos) as served:
        assert pull(served, tmp_path, "tiny-ti2v").returncode == 0
    # The hub is gone: the server reads the models directory only.
    settings = make_settings(
        tmp_path,
        catalog_path=tmp_path / "gpu.toml",
        catalog_profile="gpu",
        models_dir=tmp_path / "models",
        gpu_memory_gb=24,
    )
    png = encode_image(pattern_image(320, 180))
    with live_server(settings) as server:
        spec = server.runtime.catalog.get("veo-3.1-generate-001")
        assert spec.engine == "tiny-ti2v" and spec.durations == (4,)
        options = {"base_url": server.url}
        with genai.Client(api_key=server.api_key, http_options=options) as client:
            operation = client.models.generate_videos(
                model="veo-3.1-generate-001",
                source=types.GenerateVideosSource(
                    prompt="a red cat walks",
                    image=types.Image(image_bytes=png, mime_type="image/png"),
                ),
                config=types.GenerateVideosConfig(duration_seconds=4),
            )
            deadline = time.monotonic() + 240
            while not operation.done:
                assert time.monotonic() < deadline, "the operation did not finish"
                time.sleep(0.5)
                operation = client.operations.get(operation)
            assert operation.error is None, operation.error
            assert operation.response is not None and operation.response.generated_videos
            video = client.files.download(file=operation.response.generated_videos[0])
            refused = None
            try:
                client.models.generate_videos(
                    model="veo-3.1-generate-001",
                    source=types.GenerateVideosSource(prompt="a cat"),
                    config=types.GenerateVideosConfig(duration_seconds=8),
                )
            except Exception as error:  # the SDK raises its ClientError for a 400
                refused = error
    facts = probe(video)
    assert (facts.width, facts.height) == (64, 32)  # the tiny model's size: it made them
    assert facts.frames == 33  # 4 s at the engine's 8 fps, as 4k + 1 frames
    assert facts.audio_codec is not None  # Veo's default sound: the motion soundtrack
    assert refused is not None and "400" in str(refused) and "4" in str(refused)


def _pulled(models: Path, repo: str) -> None:
    (models / repo).mkdir(parents=True)
    (models / repo / "model_index.json").write_text("{}")


def _profile_catalog() -> dict:
    import tomllib
    from importlib import resources

    return tomllib.loads(resources.files("kinema").joinpath("catalog.gpu.toml").read_text())


def _shipped() -> dict:
    import tomllib
    from importlib import resources

    return tomllib.loads(resources.files("kinema").joinpath("catalog.toml").read_text())


def test_the_shipped_profile_picks_the_best_pulled_engine_that_fits(tmp_path: Path):
    models = tmp_path / "models"
    _pulled(models, "Lightricks/LTX-2")
    _pulled(models, "Wan-AI/Wan2.2-TI2V-5B-Diffusers")

    on_h100 = gpu_profile(_profile_catalog(), _shipped(), models, 80)["models"]
    on_4090 = gpu_profile(_profile_catalog(), _shipped(), models, 24)["models"]

    assert on_h100["veo-3.1-generate-001"]["engine"] == "ltx-2"  # with its own sound
    assert on_h100["veo-3.1-generate-001"]["resolutions"] == ["720p", "1080p"]
    assert on_h100["veo-3.1-generate-001"]["durations_at"] == {"1080p": [8]}
    assert on_h100["veo-3.1-fast-generate-001"]["engine"] == "ltx-2"  # FastWan not pulled
    assert on_h100["google/veo-3.1-t2v"]["engine"] == "ltx-2"  # the AI/ML API ids too
    assert on_4090["veo-3.1-generate-001"]["engine"] == "wan2.2-ti2v-5b"
    assert on_4090["veo-3.1-generate-001"]["durations"] == [4]
    assert on_4090["veo-3.1-generate-001"]["default_duration"] == 4
    assert on_4090["veo-2.0-generate-001"]["durations"] == [5]
    # Inputs no open engine honours stay on the motion engine.
    assert on_h100["google/veo-3.1-first-last-image-to-video"]["engine"] == "motion"
    assert on_h100["google/veo-3.1-reference-to-video"]["engine"] == "motion"


def test_the_profile_refuses_to_load_saying_what_to_pull(tmp_path: Path):
    with pytest.raises(ValueError) as refused:
        gpu_profile(_profile_catalog(), _shipped(), tmp_path / "models", 80)

    assert "kinema pull ltx-2" in str(refused.value)
    assert "kinema pull wan2.2-ti2v-5b" in str(refused.value)
    _pulled(tmp_path / "models", "Lightricks/LTX-2")
    with pytest.raises(ValueError, match="ltx-2: needs a GPU of 70 GiB"):
        gpu_profile(_profile_catalog(), _shipped(), tmp_path / "models", 24)


def test_weights_named_by_repo_are_read_from_the_models_directory(tmp_path: Path):
    config = EngineConfig(
        "e",
        "wan_i2v",
        16,
        {
            "repo": "Wan-AI/X",
            "lora": [{"repo": "lightx2v/L", "weight_name": "a/b.safetensors"}],
            "upsampler": "/abs/up",
        },
    )
    resolved = resolve(config, tmp_path)

    assert resolved.options["weights"] == str(tmp_path / "Wan-AI" / "X")
    assert resolved.options["lora"][0]["weights"] == str(tmp_path / "lightx2v" / "L")
    assert resolved.options["upsampler"] == "/abs/up"
    hub_id = EngineConfig("e", "ltx", 24, {"weights": "Lightricks/LTX-Video"})
    assert resolve(hub_id, tmp_path).options["weights"] == "Lightricks/LTX-Video"  # not pulled
    own = EngineConfig("e", "ltx", 24, {"weights": "/srv/ltx", "repo": "Lightricks/LTX-Video"})
    assert resolve(own, tmp_path).options["weights"] == "/srv/ltx"
    assert [d.directory for d in downloads(own, tmp_path)] == [Path("/srv/ltx")]  # pulled there
    assert [d.directory for d in downloads(config, tmp_path)] == [
        tmp_path / "Wan-AI" / "X",
        tmp_path / "lightx2v" / "L",
    ]


def test_the_gpu_profile_with_nothing_pulled_says_what_to_pull(tmp_path: Path):
    environ = dict(os.environ, PYTHONPATH=str(ROOT / "src"), KINEMA_CATALOG_PROFILE="gpu")
    environ |= {"KINEMA_DATA_DIR": str(tmp_path), "KINEMA_GPU_MEMORY_GB": "80"}
    done = subprocess.run(
        [sys.executable, "-m", "kinema", "models"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert "kinema pull ltx-2" in message and "Traceback" not in message
