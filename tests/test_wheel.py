"""The wheel ``python -m build`` makes holds every file of the package.

A file left out of ``package-data`` (a migration, a playground file, the catalog, the
sample picture) works from a checkout and breaks only once installed from the wheel, so
the wheel's file list is checked against the package tree itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "src" / "kinema"


def package_files() -> set[str]:
    return {
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def build_wheel(tmp_path: Path) -> Path:
    # A copy of what a checkout holds, so the build writes nothing beside the sources.
    source = tmp_path / "source"
    shutil.copytree(PACKAGE, source / "src" / "kinema", ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc"))  # fmt: skip
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
         str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("kinema-*.whl")
    return wheel


def test_the_wheel_holds_every_file_of_the_package(tmp_path: Path):
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    packaged = {name for name in names if name.startswith("kinema/")}
    missing = package_files() - packaged
    assert missing == set(), f"not in the wheel: {sorted(missing)}"
    for needed in ("kinema/catalog.toml", "kinema/migrations/versions",
                   "kinema/static/playground/index.html", "kinema/assets/sample.jpg"):  # fmt: skip
        assert any(name.startswith(needed) for name in packaged), needed
    assert "kinema = kinema.cli:main" in scripts
    assert b"Provides-Extra: scale" in metadata
