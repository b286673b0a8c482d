"""Are the wheels in ``.whl/`` the ones the GPU image lacks, for its Python (3.12, x86_64)?

The GPU benchmark machine runs CPython 3.12 on x86_64 Linux with torch, transformers,
huggingface_hub, safetensors and peft, and without internet: diffusers, ftfy, wcwidth and
importlib_metadata (with importlib_metadata's own zipp and lazy-importer) travel as wheels
and are installed with ``--no-deps --no-index``, so each must be there and install on that
interpreter. ``bench/gpu_device.sh`` runs this before installing; it prints one line per
wheel and exits 1 naming what is missing or built for another Python.

    python -m bench.gpu_wheels [.whl]
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

REQUIRED = ("diffusers", "ftfy", "wcwidth", "importlib_metadata", "zipp", "lazy_importer")
PYTHON = (3, 12)
PLATFORMS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")


def target_tags() -> set[Tag]:
    """The wheel tags CPython 3.12 on x86_64 Linux installs."""
    platforms = list(PLATFORMS)
    return set(cpython_tags(PYTHON, platforms=platforms)) | set(
        compatible_tags(PYTHON, "cp312", platforms=platforms)
    )


def problems(folder: Path, required: tuple[str, ...] = REQUIRED) -> tuple[list[str], list[str]]:
    """The wheels found for ``required`` and what is wrong, each as a line of text."""
    tags = target_tags()
    found: dict[str, list[str]] = {}
    wrong: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.whl")) if folder.is_dir() else []:
        name, _, _, wheel_tags = parse_wheel_filename(path.name)
        (found if wheel_tags & tags else wrong).setdefault(name, []).append(path.name)
    good, bad = [], []
    for name in required:
        key = canonicalize_name(name)
        if key in found:
            good.append(found[key][0])
        elif key in wrong:
            bad.append(f"{name}: {wrong[key][0]} does not install on CPython 3.12 x86_64")
        else:
            bad.append(f"{name}: no wheel")
    return good, bad


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else ".whl")
    good, bad = problems(folder)
    for name in good:
        print(f"wheel ok: {name}")
    if bad:
        print("WHEELS MISSING OR WRONG:", "; ".join(bad), "(run scripts/fetch-gpu-wheels.sh)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
