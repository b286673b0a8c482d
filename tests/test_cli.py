"""The ``kinema`` command line, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kinema.catalog import Catalog
from tests.support import LiveServer, live_server, make_settings, probe

SAMPLE = Path(__file__).parents[1] / "src" / "kinema" / "assets" / "sample.jpg"


def kinema(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KINEMA_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "kinema", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_keys_are_shown_once_listed_by_prefix_and_revocable(tmp_path: Path):
    created = kinema(tmp_path, "keys", "create", "ci")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("kin_") and len(secret) > 40

    listed = kinema(tmp_path, "keys", "list")
    assert listed.returncode == 0
    assert secret[:12] in listed.stdout and secret not in listed.stdout
    assert "ci" in listed.stdout

    # A server over the same data directory, trusting no cached key check.
    settings = make_settings(tmp_path, key_cache_s=0)
    with live_server(settings, workers=0) as live, live.client(api_key=secret) as client:
        assert client.get("/v1/videos").status_code == 200
        revoked = kinema(tmp_path, "keys", "revoke", secret[:12])
        assert revoked.returncode == 0, revoked.stderr
        assert client.get("/v1/videos").status_code == 401
    again = kinema(tmp_path, "keys", "revoke", "kin_nothing-like-it")
    assert again.returncode == 1


def test_models_lists_every_model_id(tmp_path: Path):
    result = kinema(tmp_path, "models")
    assert result.returncode == 0
    listed = {line.split("│")[1].strip() for line in result.stdout.splitlines() if "│" in line}
    model_ids = Catalog.load().model_ids()
    assert len(model_ids) >= 20
    assert listed == set(model_ids)


def test_generate_without_a_server_renders_the_sample(tmp_path: Path):
    output = tmp_path / "clip.mp4"
    result = kinema(
        tmp_path, "generate", str(SAMPLE), "Pan left as he says: 'Hi!'", "-o", str(output),
        "--model", "google/veo-3.0-i2v-fast", "--duration", "4", "--resolution", "720p",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    facts = probe(output.read_bytes())
    assert (facts.width, facts.height, facts.frames) == (1280, 720, 96)
    assert facts.audio_codec == "aac"


def test_generate_reports_a_validation_error_and_fails(tmp_path: Path):
    result = kinema(tmp_path, "generate", str(SAMPLE), "x", "--duration", "5")
    assert result.returncode == 1
    assert "duration" in result.stderr


def owner_of(live: LiveServer) -> str:
    return next(k.id for k in live.runtime.keys.list() if live.api_key.startswith(k.prefix))


def test_generate_with_server_renders_on_that_server_with_its_key(tmp_path: Path):
    with live_server(make_settings(tmp_path / "remote"), workers=1) as live:
        output = tmp_path / "remote.mp4"
        result = kinema(
            tmp_path, "generate", str(SAMPLE), "Zoom in slowly", "-o", str(output),
            "--server", live.url, "--api-key", live.api_key,
            "--model", "google/veo-3.0-i2v-fast", "--duration", "4", "--resolution", "720p",
            "--no-audio",
        )
        assert result.returncode == 0, result.stderr + result.stdout
        [job] = live.runtime.store.list(owner_of(live))
    assert job.model == "google/veo-3.0-i2v-fast" and job.request.image is not None
    assert job.result is not None and job.result.video_key.endswith(".mp4")
    facts = probe(output.read_bytes())
    assert (facts.width, facts.height, facts.frames, facts.audio_codec) == (1280, 720, 96, None)
    assert not (tmp_path / "data").exists(), "no local server was started"


def test_generate_with_image_dash_sends_no_image(tmp_path: Path):
    with live_server(make_settings(tmp_path / "remote"), workers=1) as live:
        output = tmp_path / "text.mp4"
        result = kinema(
            tmp_path, "generate", "-", "Rain on a window at night", "-o", str(output),
            "--server", live.url, "--api-key", live.api_key,
            "--model", "google/veo-3.1-t2v-fast", "--duration", "4", "--resolution", "720p",
            "--no-audio",
        )
        assert result.returncode == 0, result.stderr + result.stdout
        [job] = live.runtime.store.list(owner_of(live))
    assert job.request.image is None and job.request.prompt == "Rain on a window at night"
    facts = probe(output.read_bytes())
    assert (facts.width, facts.height, facts.frames) == (1280, 720, 96)


def test_generate_with_a_wrong_key_for_the_server_fails(tmp_path: Path):
    with live_server(make_settings(tmp_path / "remote"), workers=0) as live:
        result = kinema(
            tmp_path, "generate", "-", "x", "-o", str(tmp_path / "never.mp4"),
            "--server", live.url, "--api-key", "kin_not-a-real-key",
            "--model", "google/veo-3.1-t2v-fast",
        )
        assert live.runtime.store.list(owner_of(live)) == []
    assert result.returncode == 1
    assert "401" in result.stderr
    assert not (tmp_path / "never.mp4").exists()


def test_generate_extends_an_earlier_generation_by_its_id(tmp_path: Path):
    common = ["--model", "google/veo-3.1-i2v-fast", "--resolution", "720p", "--no-audio"]
    with live_server(make_settings(tmp_path / "remote"), workers=1) as live:
        server = ["--server", live.url, "--api-key", live.api_key]
        source = tmp_path / "source.mp4"
        first = kinema(
            tmp_path, "generate", str(SAMPLE), "Zoom in slowly", "-o", str(source),
            *server, *common,
        )
        assert first.returncode == 0, first.stderr + first.stdout
        generation = first.stdout.strip().splitlines()[-1].removeprefix("generation ")
        joined = tmp_path / "joined.mp4"
        second = kinema(
            tmp_path, "generate", "-", "The camera keeps going", "-o", str(joined),
            "--extend", generation, "--duration", "4", *server, *common,
        )
        assert second.returncode == 0, second.stderr + second.stdout
        with_image = kinema(
            tmp_path, "generate", str(SAMPLE), "x", "--extend", generation, *server, *common
        )
    before, after = probe(source.read_bytes()), probe(joined.read_bytes())
    assert (after.width, after.height) == (before.width, before.height)
    assert after.frames == before.frames + 4 * 24
    assert with_image.returncode == 2 and "--extend" in with_image.stderr
