"""The Vertex AI dialect: Google's own SDKs (3.x, Python and JS) end to end, then raw REST.

google-genai 3.x sends ``generate_videos`` only to Vertex AI. The test extra pins 2.x (for
the Gemini-mode tests), so 3.x runs in its own virtualenv, ``.venv-genai3`` at the
repository root, and the JS SDK in ``.node-genai3``: ``scripts/test.sh`` installs both
before the suite runs (the suite itself installs nothing). Where they are missing these
tests are skipped, or fail under ``CI=true``. The SDK scripts in ``tests/sdk/`` are
unchanged clients but for base URL and key.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from PIL import Image

from tests.conftest import missing_tool
from tests.scale_support import S3Server, moto_server
from tests.support import (
    LiveServer,
    encode_image,
    first_frame,
    live_server,
    make_settings,
    pattern_image,
    probe,
)

ROOT = Path(__file__).resolve().parents[1]
SDK_DIR = Path(__file__).parent / "sdk"
GENAI3_VENV = ROOT / ".venv-genai3"
GENAI3 = "google-genai 3.x"
NODE_DIR = ROOT / ".node-genai3"
GENAI3_JS = "@google/genai 3.x"
MODEL = "veo-3.1-fast-generate-001"
EXPRESS = "projects/kinema/locations/global/publishers/google/models"
PROJECT = "projects/my-project/locations/us-central1/publishers/google/models"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(make_settings(tmp_path_factory.mktemp("vertex")), workers=2) as live:
        yield live


@pytest.fixture(scope="module")
def png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "frame.png"
    path.write_bytes(encode_image(pattern_image(640, 360)))
    return path


@pytest.fixture(scope="session")
def genai3_python() -> Path:
    """The Python of the virtualenv holding google-genai 3.x (``scripts/test.sh``)."""
    python = GENAI3_VENV / "bin" / "python"
    if not (GENAI3_VENV / ".ready").exists():
        missing_tool(f"{GENAI3} is not installed in {GENAI3_VENV}: run scripts/test.sh")
    return python


@pytest.fixture(scope="session")
def genai3_js() -> dict[str, str]:
    """Environment for node with @google/genai 3.x (``scripts/test.sh`` installs it)."""
    if shutil.which("node") is None:
        missing_tool("node is not installed: the @google/genai JS SDK test needs it")
    if not (NODE_DIR / ".ready").exists():
        missing_tool(f"{GENAI3_JS} is not installed in {NODE_DIR}: run scripts/test.sh")
    return {**os.environ, "NODE_PATH": str(NODE_DIR / "node_modules")}


def run_sdk(command: list[str], env: dict[str, str] | None = None) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_four_second_mp4(path: Path) -> None:
    facts = probe(path.read_bytes())
    assert (facts.width, facts.height, facts.frames) == (1280, 720, 4 * 24)
    assert facts.video_codec == "h264"


@pytest.mark.parametrize("mode", ["express", "project"])
def test_python_sdk_3_makes_a_video_in_vertex_mode(
    server: LiveServer, genai3_python: Path, png: Path, tmp_path: Path, mode: str
):
    out = tmp_path / "video.mp4"
    script = str(SDK_DIR / "genai3_vertex.py")
    args = [mode, server.url, server.api_key, MODEL, str(png), str(out)]
    result = run_sdk([str(genai3_python), script, *args])
    assert result["sdk"].startswith("3.")
    scope = EXPRESS if mode == "express" else PROJECT  # the SDK's project and location
    assert result["name"].startswith(f"{scope}/{MODEL}/operations/")
    assert result["mime_type"] == "video/mp4" and result["bytes"] > 1000
    assert_four_second_mp4(out)


@pytest.mark.parametrize("mode", ["express", "project"])
def test_js_sdk_3_makes_a_video_in_vertex_mode(
    server: LiveServer, genai3_js: dict[str, str], png: Path, tmp_path: Path, mode: str
):
    out = tmp_path / "video.mp4"
    script = str(SDK_DIR / "genai3_vertex.cjs")
    args = [mode, server.url, server.api_key, MODEL, str(png), str(out)]
    result = run_sdk(["node", script, *args], env=genai3_js)
    scope = EXPRESS if mode == "express" else PROJECT
    assert result["name"].startswith(f"{scope}/{MODEL}/operations/")
    assert_four_second_mp4(out)


def test_python_sdk_3_source_form_references_labels_and_resize_mode(
    server: LiveServer, genai3_python: Path, tmp_path: Path
):
    pictures = {
        "red": Image.new("RGB", (640, 360), (220, 30, 30)),
        "blue": Image.new("RGB", (640, 360), (30, 30, 220)),
        "square": pattern_image(360, 360),
    }
    for name, picture in pictures.items():
        (tmp_path / f"{name}.png").write_bytes(encode_image(picture))
    script = str(SDK_DIR / "genai3_vertex_source.py")
    files = [str(tmp_path / f"{name}.png") for name in pictures]
    result = run_sdk(
        [str(genai3_python), script, server.url, server.api_key, MODEL, *files, str(tmp_path)]
    )
    assert result["deprecations"] == []  # the source= form, not the keywords that go away
    assert result["labels"] == {"team": "video", "run": "nightly"}
    references, padded = result["names"]
    job = server.runtime.store.get_any(references.rsplit("/", 1)[1])
    assert len(job.request.reference_images) == 2 and job.request.image is None
    red = first_frame((tmp_path / "references.mp4").read_bytes()).reshape(-1, 3).mean(axis=0)
    assert red[0] > red[2] + 40  # the first ASSET reference is filmed
    assert probe((tmp_path / "references.mp4").read_bytes()).duration_s == 8.0
    assert server.runtime.store.get_any(padded.rsplit("/", 1)[1]).request.resize_mode == "pad"
    assert_four_second_mp4(tmp_path / "padded.mp4")


def test_more_asset_references_than_veo_3_1_takes_is_a_400_naming_the_limit(
    server: LiveServer, png: Path
):
    data = base64.b64encode(png.read_bytes()).decode()
    reference = {
        "image": {"bytesBase64Encoded": data, "mimeType": "image/png"},
        "referenceType": "ASSET",
    }
    body = {
        "instances": [{"prompt": "x", "referenceImages": [reference] * 4}],
        "parameters": {"durationSeconds": 8},
    }
    with rest(server) as client:
        answer = client.post(
            f"/v1beta1/publishers/google/models/{MODEL}:predictLongRunning", json=body
        )
    assert answer.status_code == 400
    assert "1 to 3 images (the model's limit), not 4" in answer.json()["error"]["message"]


# --- raw REST ---


def rest(server: LiveServer, *, bearer: bool = False) -> httpx.Client:
    auth = {"Authorization": f"Bearer {server.api_key}"}
    headers = auth if bearer else {"x-goog-api-key": server.api_key}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def body(png: Path, **parameters: object) -> dict:
    data = base64.b64encode(png.read_bytes()).decode()
    image = {"bytesBase64Encoded": data, "mimeType": "image/png"}
    return {
        "instances": [{"prompt": "a pan", "image": image}],
        "parameters": {"durationSeconds": 4, "resolution": "720p", **parameters},
    }


def assert_rpc_error(response: httpx.Response, code: int, status: str) -> dict:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (code, status), error
    assert error["message"]
    return error


def fetch(client: httpx.Client, name: str, version: str = "v1beta1") -> httpx.Response:
    resource = name.rpartition("/operations/")[0]
    return client.post(f"/{version}/{resource}:fetchPredictOperation", json={"operationName": name})


def test_project_mode_rest_runs_to_an_inline_video_under_v1(server: LiveServer, png: Path):
    with rest(server, bearer=True) as client:
        created = client.post(f"/v1/{PROJECT}/{MODEL}:predictLongRunning", json=body(png))
        assert created.status_code == 200, created.text
        name = created.json()["name"]
        assert name.startswith(f"{PROJECT}/{MODEL}/operations/")
        running = fetch(client, name, "v1").json()
        assert running["name"] == name and running["done"] is False
        # The fixed-scope name earlier versions answered polls the same operation.
        fixed = fetch(client, name.replace(PROJECT, EXPRESS), "v1").json()
        assert fixed["name"] == name
        deadline = time.monotonic() + 120
        while not (answer := fetch(client, name, "v1")).json()["done"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    operation = answer.json()
    # a clip of a few seconds is made in one go and sent whole, with its length
    assert answer.headers["content-length"] == str(len(answer.content))
    assert "transfer-encoding" not in answer.headers
    assert "error" not in operation, operation
    response = operation["response"]
    assert response["raiMediaFilteredCount"] == 0
    [video] = response["videos"]
    assert video["mimeType"] == "video/mp4"
    assert probe(base64.b64decode(video["bytesBase64Encoded"])).frames == 4 * 24


def test_every_path_under_the_prefix_answers_in_the_vertex_envelope(server: LiveServer):
    with rest(server) as client:
        assert_rpc_error(client.get("/v1beta1/no/such/thing"), 404, "NOT_FOUND")
        wrong_method = client.get(f"/v1/{PROJECT}/{MODEL}:predictLongRunning")
        assert_rpc_error(wrong_method, 405, "NOT_FOUND")
        unknown = client.post(f"/v1beta1/{PROJECT}/veo-9:predictLongRunning", json={})
        assert "veo-9" in assert_rpc_error(unknown, 404, "NOT_FOUND")["message"]
        other = client.post(f"/v1beta1/publishers/google/models/{MODEL}:generateContent", json={})
        assert_rpc_error(other, 404, "NOT_FOUND")
        missing = fetch(client, f"{EXPRESS}/{MODEL}/operations/{'0' * 32}")
        assert_rpc_error(missing, 404, "NOT_FOUND")
        no_name = client.post(f"/v1beta1/{EXPRESS}/{MODEL}:fetchPredictOperation", json={})
        assert_rpc_error(no_name, 400, "INVALID_ARGUMENT")
    with httpx.Client(base_url=server.url) as anonymous:
        response = anonymous.post(f"/v1beta1/publishers/google/models/{MODEL}:predictLongRunning")
        assert_rpc_error(response, 401, "UNAUTHENTICATED")


def test_another_keys_operation_is_not_found(server: LiveServer, png: Path):
    with rest(server) as client:
        created = client.post(f"/v1beta1/{PROJECT}/{MODEL}:predictLongRunning", json=body(png))
        name = created.json()["name"]
    other = server.new_key("vertex-other")
    with httpx.Client(base_url=server.url, headers={"x-goog-api-key": other}) as client:
        assert_rpc_error(fetch(client, name), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("project", "location"),
    [
        ("x" * 400, "us-central1"),
        ("my-project", "us central1"),
        ("my-project", "-us-central1"),
        ("projet-\u00e9t\u00e9", "us-central1"),
        ("<script>", "global"),
    ],
)
def test_a_project_or_location_no_google_id_could_be_is_a_400(
    server: LiveServer, png: Path, project: str, location: str
):
    scope = f"projects/{quote(project, safe='')}/locations/{quote(location, safe='')}"
    models = f"{scope}/publishers/google/models"
    operation = f"{models}/{MODEL}/operations/{'0' * 32}"
    with rest(server, bearer=True) as client:
        created = client.post(f"/v1beta1/{models}/{MODEL}:predictLongRunning", json=body(png))
        polled = client.post(
            f"/v1beta1/{models}/{MODEL}:fetchPredictOperation", json={"operationName": operation}
        )
        named = client.post(
            f"/v1beta1/{EXPRESS}/{MODEL}:fetchPredictOperation",
            json={"operationName": f"{scope}/publishers/google/models/{MODEL}/operations/x"},
        )
    for response in (created, polled, named):
        message = assert_rpc_error(response, 400, "INVALID_ARGUMENT")["message"]
        assert project not in message and location not in message
        assert len(response.text) < 1000


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"storageUri": "gs://bucket/out/"}, "parameters.storageUri"),
        ({"storageUri": "s3://bucket/out/"}, "parameters.storageUri"),
        ({"sampleCount": 5}, "parameters.sampleCount"),  # the model makes up to 4
        ({"resizeMode": "STRETCH"}, "parameters.resizeMode"),
        ({"compressionQuality": "LOSSLESS"}, "parameters.compressionQuality"),
        ({"durationSeconds": 5}, "parameters.durationSeconds"),
    ],
)
def test_unserved_parameters_are_400s_naming_the_field(
    server: LiveServer, png: Path, parameters: dict, field: str
):
    with rest(server) as client:
        response = client.post(
            f"/v1beta1/publishers/google/models/{MODEL}:predictLongRunning",
            json=body(png, **parameters),
        )
    error = assert_rpc_error(response, 400, "INVALID_ARGUMENT")
    fields = [v["field"] for v in error["details"][0]["fieldViolations"]]
    assert fields == [field], error


# --- storageUri with S3 storage ---


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_server() as server:
        server.create_bucket("videos")
        yield server


def test_storage_uri_in_the_servers_bucket_answers_the_copy_under_it(
    s3: S3Server, png: Path, tmp_path: Path
):
    settings = make_settings(tmp_path, storage_url=s3.url("videos", "kinema"))
    with live_server(settings) as live, rest(live) as client:
        uri = "s3://videos/kinema/out/"
        created = client.post(
            f"/v1beta1/{PROJECT}/{MODEL}:predictLongRunning", json=body(png, storageUri=uri)
        )
        assert created.status_code == 200, created.text
        name = created.json()["name"]
        deadline = time.monotonic() + 120
        while not (operation := fetch(client, name).json())["done"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        elsewhere = client.post(
            f"/v1beta1/{PROJECT}/{MODEL}:predictLongRunning",
            json=body(png, storageUri="s3://other-bucket/x/"),
        )
        job = live.runtime.store.get_any(name.rpartition("/")[2])
    [video] = operation["response"]["videos"]
    assert "bytesBase64Encoded" not in video
    assert video["gcsUri"] == f"{uri}{job.id}/sample_0.mp4"
    copy = s3.client().get_object(Bucket="videos", Key=f"kinema/out/{job.id}/sample_0.mp4")
    own = s3.client().get_object(Bucket="videos", Key=f"kinema/{job.outputs[0].video_key}")
    data = copy["Body"].read()
    assert data == own["Body"].read()
    assert probe(data).frames == 4 * 24
    assert_rpc_error(elsewhere, 400, "INVALID_ARGUMENT")
