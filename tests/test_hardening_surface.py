"""What anyone can reach without a key, and what an operator's terminal shows: /metrics
keeps a bounded set of series whatever methods arrive, /readyz names no storage detail,
every answer says ``nosniff``, and key names print as they were given."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.hardening_support import assert_envelope, quick_settings
from tests.support import LiveServer, live_server


@pytest.fixture(scope="module")
def h11(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server under uvicorn's h11 parser, which takes any token as a method."""
    settings = quick_settings(
        tmp_path_factory.mktemp("h11"), http_protocol="h11", max_body_bytes=100_000
    )
    with live_server(settings, workers=1) as live:
        yield live


def _raw_request(url: str, method: str, path: str) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def _method_labels(metrics: str) -> set[str]:
    return set(re.findall(r'kinema_http_request_duration_seconds_count\{method="([^"]*)"', metrics))


def test_invented_methods_share_one_metrics_label(h11: LiveServer):
    for index in range(40):
        answer = _raw_request(h11.url, f"INVENTED{index}", "/healthz")
        assert answer.startswith(b"HTTP/1.1 405"), answer[:200]
    for path in ("/v1/videos", f"/v1/videos/{'x' * 10}"):
        _raw_request(h11.url, "MKCOL", path)
    metrics = httpx.get(h11.url + "/metrics").text

    labels = _method_labels(metrics)
    assert "other" in labels
    assert labels <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    series = metrics.count('kinema_http_request_duration_seconds_count{method="other"')
    assert series <= 3, series  # one per route template and status, not one per method


def test_readyz_says_unreachable_and_logs_the_storage_error(tmp_path: Path):
    trap = _LogTrap()
    logging.getLogger("kinema").addHandler(trap)
    try:
        with live_server(quick_settings(tmp_path), workers=1) as live:
            files = live.runtime.settings.resolved_storage_dir
            (files / "health").mkdir(parents=True, exist_ok=True)
            (files / "health").rmdir()
            (files / "health").write_text("a file where the probe's directory should be")
            ready = httpx.get(live.url + "/readyz", timeout=30)
    finally:
        logging.getLogger("kinema").removeHandler(trap)
    assert ready.status_code == 503
    assert ready.json()["checks"]["storage"] == {"ok": False, "detail": "unreachable"}
    assert str(files) not in ready.text and "Error" not in ready.text
    assert any(str(files) in line for line in trap.lines), trap.lines  # the operator's copy


class _LogTrap(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/playground",
        "/playground/app.js",
        "/playground/style.css",
        "/playground/models.json",
        "/playground/nope.js",
        "/healthz",
    ],
)
def test_the_page_its_assets_and_answers_say_nosniff(h11: LiveServer, path: str):
    response = httpx.get(h11.url + path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


def test_json_errors_of_every_kind_say_nosniff(h11: LiveServer):
    with h11.client() as client:
        refused = client.post("/v1/videos", json={"model": "<script>", "prompt": "p"})
        missing = client.get("/v1/videos/video_nope")
    unauthenticated = httpx.get(h11.url + "/v1/videos")
    with h11.client() as client:
        too_long = client.post("/v1/videos", json={"model": "quick", "prompt": "p" * 200_000})
    for response in (refused, missing, unauthenticated, too_long):
        assert_envelope("openai", response)
        assert response.headers["x-content-type-options"] == "nosniff", response.status_code


def test_the_pages_policy_allows_no_form_submission(h11: LiveServer):
    policy = httpx.get(h11.url + "/").headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["form-action"] == "'none'"
    assert directives["script-src"] == "'self'"


def _kinema(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinema", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_key_names_print_as_given_not_as_rich_markup(tmp_path: Path):
    env = {
        **os.environ,
        "KINEMA_DATA_DIR": str(tmp_path / "data"),
        "KINEMA_SIGNING_SECRET": "test-secret",
        "COLUMNS": "250",
    }
    name = "[bold red]mallory[/]"
    created = _kinema(env, "keys", "create", name)
    assert created.returncode == 0, created.stderr
    assert name in created.stderr

    listed = _kinema(env, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout

    quota = _kinema(env, "keys", "quota", "mallory", "--max-active-jobs", "2")
    assert quota.returncode == 1 and "'mallory'" in quota.stderr  # not a key
    key_id = next(line.split()[1] for line in listed.stdout.splitlines() if name in line)
    quota = _kinema(env, "keys", "quota", key_id, "--max-active-jobs", "2")
    assert quota.returncode == 0, quota.stderr
    assert f"({name})" in quota.stdout

    usage = _kinema(env, "usage", "--key", "[red]x[/red]")
    assert usage.returncode == 1 and "'[red]x[/red]'" in usage.stderr
