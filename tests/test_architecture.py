"""Layering rules that keep the code base in the shape docs/architecture.md draws."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "kinema"
WEB_MODULES = ("fastapi", "starlette", "uvicorn")
HTTP_LAYER = ("api", "server.py", "cli.py")


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_the_http_layer_imports_the_web_framework():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in HTTP_LAYER:
            continue
        if imported_roots(path) & set(WEB_MODULES):
            offenders.append(str(relative))
    assert offenders == []


def test_engines_never_touch_the_database_or_storage():
    for path in (PACKAGE / "engines").rglob("*.py"):
        source = path.read_text()
        assert "sqlalchemy" not in imported_roots(path), path
        assert "kinema.jobs" not in source and "kinema.storage" not in source, path


def runtime_kinema_imports(path: Path) -> set[str]:
    """The kinema modules ``path`` imports when it runs (``if TYPE_CHECKING:`` excluded)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for child in ast.walk(statement)
    }
    modules: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kinema"):
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(a.name for a in node.names if a.name.startswith("kinema"))
    return modules


def test_observability_depends_on_nothing_it_observes():
    for path in (PACKAGE / "observability").rglob("*.py"):
        for module in runtime_kinema_imports(path):
            allowed = ("kinema.types", "kinema.logsafe")  # leaves: they import no kinema module
            assert module in allowed or module.startswith("kinema.observability"), (
                path.name,
                module,
            )
def kinema_imports(path: Path) -> set[str]:
    """Every ``kinema.x.y`` module ``path`` imports (absolute imports)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("kinema"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kinema"):
            names.add(str(node.module))
    return names


def test_imports_never_run_back_up_the_layers():
    """jobs/ below webhooks/ and api/; the database helpers below jobs/; media/ and
    storage/ below jobs/ (the outbox lives in jobs/, the schema in kinema.schema)."""
    below = {
        "jobs": ("kinema.webhooks", "kinema.api", "kinema.runtime"),
        "media": ("kinema.jobs", "kinema.webhooks", "kinema.api", "kinema.runtime"),
        "storage": ("kinema.jobs", "kinema.webhooks", "kinema.api", "kinema.runtime"),
        "db.py": ("kinema.jobs", "kinema.webhooks", "kinema.api"),
        "schema.py": ("kinema.jobs", "kinema.webhooks", "kinema.api"),
        "catalog.py": ("kinema.jobs", "kinema.webhooks", "kinema.api", "kinema.runtime"),
    }
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        forbidden = below.get(relative.parts[0], ())
        for name in kinema_imports(path):
            if name.startswith(forbidden):
                offenders.append(f"{relative} imports {name}")
    assert offenders == []


# --- Workers and wire tables never need the web framework -------------------------------
#
# A worker process (``kinema worker``) renders webhook bodies from the wire tables
# (``kinema.wire``) through ``kinema.webhooks.renderers``; it must not import FastAPI or
# Starlette, nor the dialects that need them.

WIRE_ALLOWED = ("kinema.wire", "kinema.views", "kinema.types", "kinema.errors")
WEB_OR_ROUTE_MODELS = ("fastapi", "starlette", "pydantic")

WORKER_PROBE = """
import json, os, signal, sys, threading, time

import kinema.cli
import kinema.engines.upstream.engine
import kinema.jobs.execute
import kinema.runtime
import kinema.webhooks.renderers
import kinema.wire


def stop_when_running():
    # The worker installs its SIGTERM handler once its runtime is built: then stop it.
    while signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


threading.Thread(target=stop_when_running, daemon=True).start()
kinema.cli.worker(models=None, concurrency=1, gpus=None, log_level="warning")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[1:])))
"""


def imported_in_subprocess(script: str, roots: tuple[str, ...], env: dict[str, str]) -> list[str]:
    """The modules under ``roots`` that are loaded once ``script`` has run in a fresh
    interpreter (it prints them as a JSON list on its last line)."""
    import json
    import os
    import subprocess
    import sys

    environment = {**os.environ, **env, "PYTHONPATH": str(PACKAGE.parent)}
    done = subprocess.run(
        [sys.executable, "-c", script, *roots],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_worker_process_never_imports_the_web_framework(tmp_path: Path):
    """``kinema worker`` runs (runtime, executor, upstream engines, webhook deliverer built
    from the wire tables) and stops on SIGTERM without FastAPI or Starlette loaded."""
    env = {"KINEMA_DATA_DIR": str(tmp_path / "data"), "KINEMA_SIGNING_SECRET": "test-secret"}
    loaded = imported_in_subprocess(WORKER_PROBE, ("fastapi", "starlette"), env)
    assert loaded == []


def test_the_wire_tables_import_no_web_framework_nor_route_models():
    script = (
        "import json, sys\n"
        "import kinema.wire\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in sys.argv[1:])))"
    )
    assert imported_in_subprocess(script, WEB_OR_ROUTE_MODELS, {}) == []
    for path in (PACKAGE / "wire").rglob("*.py"):
        assert not imported_roots(path) & set(WEB_OR_ROUTE_MODELS), path
        for name in kinema_imports(path):
            assert name.startswith(WIRE_ALLOWED), f"{path.name} imports {name}"


def test_every_dialect_renders_with_its_wire_table():
    """The server dialects and the webhook renderers use one status object per API."""
    from kinema.api.dialects import dialects
    from kinema.wire import STATUS_OBJECTS

    served = {dialect.name: dialect for dialect in dialects()}
    assert set(served) == set(STATUS_OBJECTS)
    for name, status_object in STATUS_OBJECTS.items():
        assert served[name].render == status_object.render, name
        assert served[name].inline_video == status_object.inline_video, name
