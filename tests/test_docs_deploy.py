"""docs/deploy.md as printed: its environment file reads the same in bash and in
systemd's ``EnvironmentFile=``, and kinema's settings accept it; its units point at it.

systemd reads an environment file with its own rules (``parse_env_file``): whole-line
comments only (an inline ``# note`` stays in the value), quotes removed, backslash escapes.
``systemd_environment`` follows them, so a value that a shell and systemd would read
differently (an unquoted ``&``, an inline comment) fails here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kinema.settings import Settings
from kinema.storage.s3 import S3Location

DEPLOY = Path(__file__).parents[1] / "docs" / "deploy.md"


def blocks(text: str) -> list[str]:
    return re.findall(r"```(?:sh|ini)\n(.*?)```", text, flags=re.DOTALL)


def block_named(name: str) -> str:
    found = [b for b in blocks(DEPLOY.read_text("utf-8")) if b.startswith(f"# {name}\n")]
    assert len(found) == 1, f"docs/deploy.md should print {name} once"
    return found[0]


def systemd_environment(text: str) -> dict[str, str]:
    """``EnvironmentFile=`` as systemd reads it (systemd.exec(5), parse_env_file)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        name, _, rest = line.partition("=")
        values[name.strip()] = _unquote(rest.strip())
    return values


def _unquote(value: str) -> str:
    out, quote, chars = [], None, iter(value)
    for char in chars:
        if quote is None and char in "\"'":
            quote = char
        elif char == quote:
            quote = None
        elif char == "\\" and quote != "'":
            out.append(next(chars, ""))
        else:
            out.append(char)
    return "".join(out)


def bash_environment(path: Path) -> dict[str, str]:
    """The variables ``set -a; . FILE; set +a`` exports, as a shell sees them."""
    script = f"set -a; . {path}; set +a; env -0"
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script], env={}, capture_output=True, timeout=30
    )
    assert result.returncode == 0 and result.stderr == b"", result.stderr.decode()
    pairs = (item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item)
    return {k: v for k, v in pairs if k.startswith(("KINEMA_", "AWS_"))}


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "kinema.env"
    path.write_text(block_named("/etc/kinema.env"), encoding="utf-8")
    return path


def test_the_env_file_reads_the_same_in_bash_and_systemd(env_file: Path):
    systemd = systemd_environment(env_file.read_text("utf-8"))
    assert bash_environment(env_file) == systemd
    storage = S3Location.parse(systemd["KINEMA_STORAGE_URL"])
    assert storage.endpoint_url == "https://minio.internal:9000"
    assert storage.region == "us-east-1"
    for name, value in systemd.items():
        assert "#" not in value and value == value.strip(), (name, value)


def test_kinema_accepts_the_documented_settings(env_file: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in systemd_environment(env_file.read_text("utf-8")).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.catalog_path == Path("/etc/kinema/catalog.toml")
    assert settings.dispatch == "procrastinate"
    assert [str(p) for p in settings.trusted_proxies] == ["10.0.0.0/8"]
    assert settings.trusted_hosts == ["video.example.com"]


@pytest.mark.parametrize("unit", ["kinema-api.service", "kinema-worker@.service"])
def test_each_unit_reads_the_env_file_and_runs_the_installed_kinema(unit: str):
    text = block_named(f"/etc/systemd/system/{unit}")
    sections: dict[str, dict[str, list[str]]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections[current] = {}
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            sections[current].setdefault(key, []).append(value)
    service = sections["Service"]
    assert service["EnvironmentFile"] == ["/etc/kinema.env"]
    [command] = service["ExecStart"]
    assert command.startswith("/opt/kinema/bin/kinema ")
    assert "#" not in command
    assert set(sections) == {"Unit", "Service", "Install"}


def test_the_install_steps_use_the_wheel_or_a_checkout():
    text = DEPLOY.read_text("utf-8")
    assert 'pip install "kinema[scale]"' not in text  # kinema is on no package index
    assert "python -m build --wheel" in text and ".whl[scale]" in text
    assert "sudo" not in text


COMPOSE_ENV = Path(__file__).parents[1] / "deploy" / "compose.env"


def compose_environment(text: str) -> dict[str, str]:
    """An ``env_file:`` as docker compose reads it: ``NAME=value``, whole-line comments."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def test_the_compose_env_file_means_the_same_to_compose_and_kinema(
    monkeypatch: pytest.MonkeyPatch,
):
    values = compose_environment(COMPOSE_ENV.read_text("utf-8"))
    for name, value in values.items():
        # Compose v1 keeps quotes and both keep an inline "# ..." in the value: neither here.
        assert value and value[0] not in "\"'" and " #" not in value, (name, value)
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.dispatch == "procrastinate"
    location = S3Location.parse(values["KINEMA_STORAGE_URL"])
    assert (location.bucket, location.endpoint_url) == ("kinema-media", "http://s3:9000")
    assert location.public_endpoint_url == "http://localhost:9000"
    assert settings.resolved_database_url.startswith("postgresql://kinema:kinema@db:5432/")
