"""The suite runs on its own settings: nothing from the caller's shell configures kinema."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kinema.settings import Settings
from tests.conftest import inherited_settings, postgres_required

REPO = Path(__file__).resolve().parent.parent
LEAKS = {
    "KINEMA_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/the_callers_own_database",
    "KINEMA_STORAGE_URL": "s3://the-callers-bucket",
    "KINEMA_AUTH_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "the-callers-key",
    "AWS_PROFILE": "production",
}


def test_no_kinema_or_aws_variable_is_visible_to_a_test(tmp_path: Path):
    assert inherited_settings(os.environ) == []
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'kinema.db'}"
    assert settings.storage_url is None and settings.auth_disabled is False


def test_only_the_suites_own_variables_are_kept():
    environ = {**LEAKS, "KINEMA_TEST_POSTGRES_URL": "postgresql://x", "PATH": "/bin"}
    assert inherited_settings(environ) == sorted(LEAKS)


def test_settings_in_the_callers_shell_do_not_reach_the_suite(tmp_path: Path):
    # The test above, run by a pytest whose caller exported kinema and AWS settings.
    env = {**os.environ, **LEAKS, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{Path(__file__).name}::test_no_kinema_or_aws_variable_is_visible_to_a_test",
        ],
        cwd=Path(__file__).parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout


@pytest.mark.parametrize(
    ("environ", "required"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"KINEMA_TEST_REQUIRE_POSTGRES": "1"}, True),
        ({"CI": "false", "KINEMA_TEST_REQUIRE_POSTGRES": "0"}, False),
    ],
)
def test_postgres_is_required_in_ci_or_when_asked(
    environ: dict[str, str], required: bool, monkeypatch: pytest.MonkeyPatch
):
    for name in ("CI", "KINEMA_TEST_REQUIRE_POSTGRES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert postgres_required() is required


def test_an_unreachable_required_postgres_fails_instead_of_skipping(tmp_path: Path):
    test = tmp_path / "test_needs_pg.py"
    test.write_text("def test_uses_it(postgres_url):\n    pass\n")
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        # A port nothing listens on (the discard port on loopback).
        "KINEMA_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:9/postgres",
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(test)]

    def run(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=tmp_path,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    skipped = run(KINEMA_TEST_REQUIRE_POSTGRES="0", CI="false")
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout[-2000:]
    failed = run(KINEMA_TEST_REQUIRE_POSTGRES="1")
    assert failed.returncode == 1 and "1 error" in failed.stdout, failed.stdout[-2000:]
    assert "PostgreSQL not reachable" in failed.stdout
