"""The ``kinema`` command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kinema.catalog import Catalog
from tests.support import (
    LiveServer,
    data_uri,
    free_port,
    live_server,
    make_settings,
    pattern_image,
    poll_until_done,
    probe,
)

SAMPLE = Path(__file__).parents[1] / "src" / "kinema" / "assets" / "sample.jpg"


def kinema(
    tmp_path: Path, *args: str, columns: int = 200, **env_vars: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KINEMA_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": str(columns),
        **env_vars,
    }
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


# --- errors in one line ---


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, result.stdout
    assert 1 <= len(lines) <= 3, result.stderr
    assert "Traceback" not in result.stderr and "File \"" not in result.stderr
    assert lines[0].startswith("error: "), lines
    for word in words:
        assert word in lines[0], lines


def test_a_missing_image_file_is_one_line(tmp_path: Path):
    result = kinema(tmp_path, "generate", str(tmp_path / "nowhere.jpg"), "x")
    assert_one_line_error(result, "nowhere.jpg")
    assert not (tmp_path / "data").exists(), "nothing was started for a missing file"


def test_a_server_that_does_not_answer_is_one_line(tmp_path: Path):
    port = free_port()
    result = kinema(
        tmp_path, "generate", "-", "x", "--server", f"http://127.0.0.1:{port}",
        "--model", "google/veo-3.1-t2v-fast",
    )  # fmt: skip
    assert_one_line_error(result, f"127.0.0.1:{port}", "cannot reach")
    assert result.stdout.strip() == ""


def test_a_bad_catalog_is_one_line_naming_the_table_and_field(tmp_path: Path):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        Catalog_TEXT.replace('durations = [4, 6, 8]', 'durations = "8"', 1), encoding="utf-8"
    )
    for args in (("models",), ("catalog", "validate"), ("keys", "list")):
        result = kinema(tmp_path, *args, KINEMA_CATALOG_PATH=str(catalog))
        assert_one_line_error(result, '[models."google/veo-3.1-i2v"] durations', str(catalog))
    not_toml = tmp_path / "broken.toml"
    not_toml.write_text("[models.x\n", encoding="utf-8")
    result = kinema(tmp_path, "catalog", "validate", str(not_toml))
    assert_one_line_error(result, "broken.toml", "not valid TOML")
    missing = kinema(tmp_path, "models", KINEMA_CATALOG_PATH=str(tmp_path / "gone.toml"))
    assert_one_line_error(missing, "gone.toml")


def test_a_model_naming_an_unknown_engine_is_named(tmp_path: Path):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        Catalog_TEXT.replace('engine = "motion"', 'engine = "motoin"', 1), encoding="utf-8"
    )
    result = kinema(tmp_path, "catalog", "validate", str(catalog))
    assert_one_line_error(result, '[models."google/veo-3.1-i2v"] engine', "motoin")


def test_debug_shows_the_traceback(tmp_path: Path):
    result = kinema(
        tmp_path, "--debug", "models", KINEMA_CATALOG_PATH=str(tmp_path / "gone.toml")
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "CatalogError" in result.stderr


def test_an_unknown_key_to_revoke_is_one_line(tmp_path: Path):
    result = kinema(tmp_path, "keys", "revoke", "kin_nothing")
    assert_one_line_error(result, "kin_nothing")


def test_a_bad_since_for_usage_is_one_line(tmp_path: Path):
    result = kinema(tmp_path, "usage", "--since", "yesterday-ish")
    assert_one_line_error(result, "yesterday-ish")


# --- catalog path | show | validate ---


def test_catalog_path_show_and_validate_the_catalog_in_use(tmp_path: Path):
    shipped = kinema(tmp_path, "catalog", "path")
    assert shipped.returncode == 0
    path = Path(shipped.stdout.strip())
    assert path.name == "catalog.toml" and path.is_file()
    assert "KINEMA_CATALOG_PATH" in shipped.stderr
    shown = kinema(tmp_path, "catalog", "show")
    assert shown.stdout == path.read_text(encoding="utf-8")

    own = tmp_path / "own.toml"
    own.write_text(shown.stdout.replace('inputs = "image"', 'inputs = "image"\nduratoins = [4]', 1))
    custom = kinema(tmp_path, "catalog", "path", KINEMA_CATALOG_PATH=str(own))
    assert custom.stdout.strip() == str(own) and "replaces" in custom.stderr
    checked = kinema(tmp_path, "catalog", "validate", KINEMA_CATALOG_PATH=str(own))
    assert checked.returncode == 0, checked.stderr
    assert f"{len(Catalog.load().models)} models: ok" in checked.stdout
    assert '[models."google/veo-3.1-i2v"] duratoins: not a catalog field' in checked.stderr


Catalog_TEXT = (Path(__file__).parents[1] / "src" / "kinema" / "catalog.toml").read_text("utf-8")


# --- help, tables and JSON ---


def test_help_shows_metavars_and_defaults_not_types(tmp_path: Path):
    for command in ((), ("generate",), ("serve",), ("worker",), ("jobs", "list"), ("usage",),
                    ("keys", "quota"), ("workers",), ("catalog", "validate")):  # fmt: skip
        result = kinema(tmp_path, *command, "--help", columns=80)
        assert result.returncode == 0, result.stderr
        for typed in ("<bool>", "<str>", "<int>", "<path>", "<list"):
            assert typed not in result.stdout, (command, result.stdout)
    generate = kinema(tmp_path, "generate", "--help", columns=80).stdout
    assert "--model MODEL" in generate and "-o, --output FILE" in generate
    assert "[default: out.mp4]" in generate and "--audio / --no-audio" in generate
    assert "--duration SECONDS" in generate and "the model's" in generate


def ids_in(text: str, ids: list[str]) -> list[str]:
    return [i for i in ids if i not in text]


def test_tables_never_cut_an_id_at_80_columns(tmp_path: Path):
    models = kinema(tmp_path, "models", columns=80)
    assert ids_in(models.stdout, Catalog.load().model_ids()) == []
    assert max(len(line) for line in models.stdout.splitlines()) <= 80
    assert "…" not in models.stdout
    listed_models = json.loads(kinema(tmp_path, "models", "--json", columns=80).stdout)
    assert [m["id"] for m in listed_models] == sorted(Catalog.load().model_ids())
    assert all(m["dialects"] and m["engines"] and m["durations"] for m in listed_models)

    created = [kinema(tmp_path, "keys", "create", f"key-{n}") for n in range(2)]
    listed = kinema(tmp_path, "keys", "list", "--json")
    keys = json.loads(listed.stdout)
    assert {k["name"] for k in keys} == {"key-0", "key-1"}
    assert all(c.stdout.strip()[:12] in {k["prefix"] for k in keys} for c in created)
    table = kinema(tmp_path, "keys", "list", columns=80).stdout
    assert ids_in(table, [k["id"] for k in keys] + [k["prefix"] for k in keys]) == []

    settings = make_settings(tmp_path)
    with live_server(settings, workers=0) as live, live.client() as client:
        made = [
            client.post("/v2/video/generations", json={
                "model": "google/veo-3.1-first-last-image-to-video-fast", "prompt": f"p{n}",
                "image_url": data_uri(pattern_image()), "last_image_url": data_uri(pattern_image()),
            }).json()["id"]
            for n in range(2)
        ]  # fmt: skip
        assert len(made) == 2
        jobs = kinema(tmp_path, "jobs", "list", "--json")
        rows = json.loads(jobs.stdout)
        assert len(rows) == 2 and {r["status"] for r in rows} == {"queued"}
        assert {r["model"] for r in rows} == {"google/veo-3.1-first-last-image-to-video-fast"}
        narrow = kinema(tmp_path, "jobs", "list", columns=80).stdout
    assert ids_in(narrow, [r["id"] for r in rows]) == []
    assert narrow.count("google/veo-3.1-first-last-image-to-video-fast") == 2
    assert "…" not in narrow


def test_usage_json_lists_each_key_and_engine(tmp_path: Path):
    settings = make_settings(tmp_path)
    with live_server(settings, workers=1) as live, live.client() as client:
        created = client.post("/v2/video/generations", json={
            "model": "google/veo-3.0-i2v-fast", "prompt": "zoom", "duration": 4,
            "resolution": "720p", "generate_audio": False, "image_url": data_uri(pattern_image()),
        })  # fmt: skip
        assert created.status_code == 200, created.text
        assert poll_until_done(client, created.json()["id"])["status"] == "completed"
    result = kinema(tmp_path, "usage", "--json")
    assert result.returncode == 0, result.stderr
    [line] = json.loads(result.stdout)
    assert line["engine"] == "motion" and line["jobs"] == 1 and line["seconds"] == 4.0
    assert line["key_id"] == owner_of(live)


# --- generate with any model, extend without --server ---


def test_generate_takes_a_gemini_only_id_and_extends_it_without_a_server(tmp_path: Path):
    first = tmp_path / "first.mp4"
    common = ["--model", "veo-3.1-fast-generate-001", "--duration", "4", "--resolution", "720p",
              "--no-audio"]  # fmt: skip
    made = kinema(tmp_path, "generate", str(SAMPLE), "Zoom in", "-o", str(first), *common)
    assert made.returncode == 0, made.stderr + made.stdout
    generation = made.stdout.strip().splitlines()[-1].removeprefix("generation ")
    assert generation.startswith("models/veo-3.1-fast-generate-001/operations/")
    longer = tmp_path / "longer.mp4"
    seven = [*common[:2], "--duration", "7", *common[4:]]  # Veo 3.1 extends by 7 s a call
    extended = kinema(
        tmp_path, "generate", "-", "And on", "-o", str(longer), "--extend", generation, *seven
    )
    assert extended.returncode == 0, extended.stderr + extended.stdout
    before, after = probe(first.read_bytes()), probe(longer.read_bytes())
    assert after.frames == before.frames + 7 * 24
    keys = json.loads(kinema(tmp_path, "keys", "list", "--json").stdout)
    assert [(k["name"], k["revoked"]) for k in keys] == [("kinema-cli", "")]


def test_generate_takes_an_openai_only_id(tmp_path: Path):
    output = tmp_path / "sora.mp4"
    made = kinema(
        tmp_path, "generate", str(SAMPLE), "Zoom in", "-o", str(output), "--model", "sora-2",
        "--duration", "4", "--resolution", "720p", "--aspect-ratio", "9:16",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr + made.stdout
    assert made.stdout.strip().splitlines()[-1].startswith("generation video_")
    facts = probe(output.read_bytes())
    assert (facts.width, facts.height, facts.frames) == (720, 1280, 96)


def test_an_unknown_model_is_one_line_however_long_the_list(tmp_path: Path):
    result = kinema(tmp_path, "generate", "-", "x", "--model", "no/such-model", columns=80)
    assert_one_line_error(result, "no/such-model", "google/veo-3.1-i2v-fast")
