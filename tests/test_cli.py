"""The ``kinema`` command line, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import probe

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

    revoked = kinema(tmp_path, "keys", "revoke", secret[:12])
    assert revoked.returncode == 0, revoked.stderr
    again = kinema(tmp_path, "keys", "revoke", "kin_nothing-like-it")
    assert again.returncode == 1


def test_models_lists_every_veo_id(tmp_path: Path):
    result = kinema(tmp_path, "models")
    assert result.returncode == 0
    for model in ("google/veo-3.1-i2v-fast", "google/veo-3.0-i2v", "veo2/image-to-video"):
        assert model in result.stdout


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
