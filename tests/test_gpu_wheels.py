"""The GPU device script's wheel check: the Python 3.12 image gets exactly the wheels it
lacks, each one that installs there (the check reads wheel file names only)."""

from __future__ import annotations

from pathlib import Path

from bench.gpu_wheels import main, problems

GOOD = (
    "diffusers-0.42.1-py3-none-any.whl",
    "ftfy-6.3.1-py3-none-any.whl",
    "wcwidth-0.9.5-cp310-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    "importlib_metadata-10.2.0-py3-none-any.whl",
    "zipp-4.1.2-py3-none-any.whl",
    "lazy_importer-0.1.0-py3-none-any.whl",
)


def _folder(tmp_path: Path, names: tuple[str, ...]) -> Path:
    folder = tmp_path / ".whl"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_the_fetched_set_passes(tmp_path: Path, capsys):
    assert main([str(_folder(tmp_path, GOOD))]) == 0
    assert capsys.readouterr().out.count("wheel ok:") == 6


def test_a_missing_importlib_metadata_is_named(tmp_path: Path):
    names = tuple(n for n in GOOD if not n.startswith("importlib_metadata"))
    good, bad = problems(_folder(tmp_path, names))
    assert bad == ["importlib_metadata: no wheel"]
    assert len(good) == 5


def test_wheels_for_python_3_11_or_another_platform_are_refused(tmp_path: Path):
    names = (
        *GOOD[:2],
        "wcwidth-0.9.5-cp311-cp311-manylinux2014_x86_64.whl",
        "zipp-4.1.2-py3-none-any.whl",
        "importlib_metadata-10.2.0-py3-none-any.whl",
        "lazy_importer-0.1.0-cp311-cp311-macosx_11_0_arm64.whl",
    )
    _, bad = problems(_folder(tmp_path, names))
    assert bad == [
        "wcwidth: wcwidth-0.9.5-cp311-cp311-manylinux2014_x86_64.whl does not install on "
        "CPython 3.12 x86_64",
        "lazy_importer: lazy_importer-0.1.0-cp311-cp311-macosx_11_0_arm64.whl does not "
        "install on CPython 3.12 x86_64",
    ]


def test_the_device_script_installs_without_dependencies_or_an_index():
    script = (Path(__file__).resolve().parents[1] / "bench" / "gpu_device.sh").read_text()
    install = next(line for line in script.splitlines() if "-m pip install" in line)
    assert "--no-deps" in install and "--no-index" in install
    assert "python -m bench.gpu_wheels" in script.replace('"$PYTHON"', "python")


def test_the_benchmark_imports_without_opencv_or_pyav(tmp_path: Path):
    """The GPU image is not assumed to have OpenCV or PyAV: the benchmark and the diffusers
    engine must import (and the bench run) without them."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    for module in ("cv2", "av"):
        (tmp_path / f"{module}.py").write_text('raise ImportError("not on the GPU image")\n')
    code = (
        "import bench.gpu_engine, kinema.engines.diffusion.wan_ti2v, tests.tiny_pipelines\n"
        "import sys; assert 'cv2' not in sys.modules and 'av' not in sys.modules"
    )
    path = os.pathsep.join([str(tmp_path), str(root / "src"), str(root)])
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
