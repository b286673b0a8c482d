"""/openapi.json describes every dialect: fuzzed with schemathesis against a live server.

Every generated request, valid or not, must get a documented status code, a documented
content type and a body that matches the documented schema (the dialect's own error
envelope for errors), and never a server error. The run is seeded and bounded so it is
reproducible and takes seconds; `st run` with more examples goes further by hand.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import LiveServer, live_server, make_settings

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)
DIALECT_PATHS = [
    "/v2/video/generations",
    "/v2/generate/video/google/generation",
    "/v1beta/models/{model_action}",
    "/v1beta/models/{model}/operations/{operation_id}",
    "/v1beta/files/{file_path}",
    "/v1/videos",
    "/v1/videos/{video_id}/content",
    "/v1/videos/generations",
    "/v1/tasks/{task_id}",
    "/v1/video/generations",
    "/v1/video/generations/{task_id}/cancel",
    "/files/{key}",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # API only: fuzzed requests that happen to be valid stay queued instead of rendering.
    with live_server(make_settings(tmp_path_factory.mktemp("fuzz")), workers=0) as live:
        yield live


def test_schema_documents_every_dialect(server: LiveServer):
    schema = httpx.get(server.url + "/openapi.json").json()
    for path in DIALECT_PATHS:
        assert path in schema["paths"], path
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "default" in operation["responses"] or path == "/healthz", (method, path)


def test_fuzzed_requests_get_documented_answers(server: LiveServer, tmp_path: Path):
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is part of the test extra"
    result = subprocess.run(
        [
            st,
            "run",
            server.url + "/openapi.json",
            "--header",
            f"Authorization: Bearer {server.api_key}",
            "--checks",
            CHECKS,
            "--max-examples",
            "15",
            "--seed",
            "20261121",
            # One worker: hypothesis parses lambda sources with ``ast``, which CPython 3.11
            # can fail at from two threads at once ("AST constructor recursion depth").
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
