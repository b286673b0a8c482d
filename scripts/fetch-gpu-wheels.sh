#!/usr/bin/env bash
# Fill .whl/ (ignored by git) with the wheels the GPU benchmark machine lacks.
#
# That machine runs Python 3.12 with torch 2.11+cu130, transformers, huggingface_hub,
# safetensors and peft, but no diffusers, ftfy, wcwidth or importlib_metadata, and has no
# internet. The wheels are fetched here for Python 3.12 on x86_64 Linux, each without its
# dependencies (--no-deps): what the machine already has stays as it is, and
# bench/gpu_device.sh installs exactly these files, again with --no-deps --no-index.
# importlib_metadata (a declared requirement of diffusers that Python 3.12 does not use)
# comes with its own two requirements, zipp and lazy-importer, so that it imports too.
#
#   bash scripts/fetch-gpu-wheels.sh            # then carry .whl/ with the repository
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
DEST="${DEST:-.whl}"

# One line per wheel: the pins are the versions this repository is tested with.
PACKAGES=(
    diffusers==0.42.1
    ftfy==6.3.1
    wcwidth==0.9.5
    importlib_metadata==10.2.0
    zipp==4.1.2
    lazy-importer==0.1.0
)

mkdir -p "$DEST"
"$PYTHON" -m pip download --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
    -d "$DEST" "${PACKAGES[@]}"
printf '%s\n' "${PACKAGES[@]}" >"$DEST/requirements.txt"
echo "wheels in $DEST/:"
ls -1 "$DEST"
