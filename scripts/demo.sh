#!/usr/bin/env bash
# Installs kinema into a virtualenv and renders the shipped sample image to out.mp4 on the
# embedded defaults: SQLite, a local files directory and the CPU motion engine.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
.venv/bin/kinema generate src/kinema/assets/sample.jpg \
  "The camera slowly pushes in as she smiles and says: 'Welcome to kinema.'" \
  --model google/veo-3.1-i2v-fast --duration 8 --resolution 1080p -o "${1:-out.mp4}"
