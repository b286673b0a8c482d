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
