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
        "catalog_models.py": ("kinema.jobs", "kinema.webhooks", "kinema.api", "kinema.runtime"),
        "catalog_fields.py": ("kinema.jobs", "kinema.webhooks", "kinema.api", "kinema.runtime"),
    }
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        forbidden = below.get(relative.parts[0], ())
        for name in kinema_imports(path):
            if name.startswith(forbidden):
                offenders.append(f"{relative} imports {name}")
    assert offenders == []


# --- the layout of docs/architecture.md: folders, one way imports, no circles ---------------


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def every_import(path: Path, modules: set[str]) -> set[str]:
    """The kinema modules ``path`` imports, ``if TYPE_CHECKING:`` blocks and relative
    imports included; ``from package import name`` counts the submodule when ``name`` is one."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("kinema"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("kinema"):
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
    return {name for name in found if name in modules and name != here}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: every_import(path, modules) for name, path in paths.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back_through_others():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_planted_back_import():
    graph = import_graph()
    graph["kinema.engines.config"] = {*graph["kinema.engines.config"], "kinema.catalog"}
    assert any({"kinema.catalog", "kinema.engines.config"} <= set(c) for c in circles(graph))


def offenders_of(graph: dict[str, set[str]], layer: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )


def test_the_catalog_stands_above_the_engines():
    """The catalog reads the engines' config and checks; no engine reads the catalog."""
    graph = import_graph()
    catalog = ("kinema.catalog", "kinema.catalog_models", "kinema.catalog_fields")
    assert offenders_of(graph, "kinema.engines", catalog) == []
    assert "kinema.engines.config" in graph["kinema.catalog"]


def test_engines_never_reach_the_http_layer_the_database_or_the_jobs():
    graph = import_graph()
    forbidden = ("kinema.api", "kinema.db", "kinema.schema", "kinema.jobs", "kinema.runtime")
    forbidden += ("kinema.service", "kinema.storage", "kinema.webhooks", "kinema.server")
    assert offenders_of(graph, "kinema.engines", forbidden) == []
    for path in (PACKAGE / "engines").rglob("*.py"):
        roots = imported_roots(path)
        assert not roots & {"fastapi", "starlette", "sqlalchemy", "alembic"}, path


def reads_the_environment(path: Path) -> bool:
    """Whether ``path`` reads environment variables itself: ``os.environ``, ``os.getenv``,
    or the hub library's constants (its reading of ``HF_*`` variables)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ("environ", "environb", "getenv")
        ):
            return True
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {alias.name for alias in node.names}
            if node.module == "os" and names & {"environ", "environb", "getenv"}:
                return True
            if node.module == "huggingface_hub.constants":
                return True
            if node.module == "huggingface_hub" and "constants" in names:
                return True
    return False


def test_only_the_settings_read_the_environment():
    """Every decision kinema makes from the environment goes through ``Settings``."""
    readers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if reads_the_environment(path)
    )
    assert readers == ["settings.py"]


def test_the_environment_finder_finds_a_planted_reader(tmp_path: Path):
    planted = tmp_path / "checks.py"
    planted.write_text('import os\nOFFLINE = os.environ.get("HF_HUB_OFFLINE")\n')
    assert reads_the_environment(planted)
    planted.write_text("from huggingface_hub import constants\nOFF = constants.HF_HUB_OFFLINE\n")
    assert reads_the_environment(planted)
    planted.write_text("import os\nHERE = os.path.dirname(__file__)\n")
    assert not reads_the_environment(planted)


def test_engine_families_live_in_their_own_folders():
    engines = PACKAGE / "engines"
    flat = sorted(p.name for p in engines.glob("*.py"))
    assert flat == ["__init__.py", "base.py", "config.py", "registry.py"]
    for family in ("motion", "sound", "diffusion", "upstream"):
        assert (engines / family / "__init__.py").is_file(), family
    models = {p.stem for p in (engines / "diffusion").glob("*.py")}
    assert {"wan_i2v", "wan_ti2v", "ltx"} <= models


def test_routes_reach_kinema_through_the_service_dependency():
    """One place reads the app's state (``kinema.api.deps``); routes get the job service."""
    readers = sorted(
        str(path.relative_to(PACKAGE))
        for path in (PACKAGE / "api").rglob("*.py")
        for line in path.read_text().splitlines()
        if "app.state.runtime" in line and "app.state.runtime =" not in line
    )
    assert readers == ["api/deps.py", "api/deps.py"]  # get_runtime, get_service


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


def written_wire(path: Path, status_words: set[str]) -> list[str]:
    """API paths and status words ``path`` writes itself instead of reading them from its
    wire table: string pieces that look like a path ("/v1/videos", f"{x}/content"; one
    "/" alone is a separator) and the words a status is compared with."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    found = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and node.value.startswith("/")
        and len(node.value) > 1
    ]
    for compare in (node for node in ast.walk(tree) if isinstance(node, ast.Compare)):
        for side in (compare.left, *compare.comparators):
            found += [
                node.value
                for node in ast.walk(side)
                if isinstance(node, ast.Constant) and node.value in status_words
            ]
    return found


def test_upstream_protocols_read_paths_and_status_words_from_the_wire_tables():
    """A path or status word of an API is written once, in its table under ``wire/``."""
    import importlib
    import pkgutil

    import kinema.wire

    status_words: set[str] = set()
    for info in pkgutil.iter_modules(kinema.wire.__path__):
        table = importlib.import_module(f"kinema.wire.{info.name}")
        status_words |= set(getattr(table, "STATUS_WORDS", {}).values())
    assert {"queued", "in_progress", "completed", "failed"} <= status_words
    offenders = {
        path.name: written
        for path in sorted((PACKAGE / "engines" / "upstream").glob("*.py"))
        if (written := written_wire(path, status_words))
    }
    assert offenders == {}


def test_the_written_wire_finder_finds_a_planted_path_and_word(tmp_path: Path):
    planted = tmp_path / "protocol.py"
    planted.write_text(
        '"""Polls /v1/videos."""\n'
        "def poll(http, ref):\n"
        '    body = http.call("GET", f"/v1/videos/{ref}")\n'
        '    return body["status"] == "completed", url.rstrip("/")\n'
    )
    assert sorted(written_wire(planted, {"completed"})) == ["/v1/videos/", "completed"]
