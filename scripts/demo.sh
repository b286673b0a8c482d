#!/usr/bin/env bash
# Installs kinema into a virtualenv and renders the shipped sample image to out.mp4 on the
# embedded defaults: SQLite, a local files directory and the CPU motion engine.
#
#   ./scripts/demo.sh [OUTPUT]          OUTPUT defaults to out.mp4
#
# KINEMA_DEMO_VENV names the virtualenv (default: .venv). KINEMA_DEMO_SKIP_INSTALL=1 runs
# the demo with that environment as it is, installing nothing (the test suite does this).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${KINEMA_DEMO_VENV:-.venv}"
if [ "${KINEMA_DEMO_SKIP_INSTALL:-0}" != "1" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e .
fi
"$venv/bin/kinema" generate src/kinema/assets/sample.jpg \
  "The camera slowly pushes in as she smiles and says: 'Welcome to kinema.'" \
  --model google/veo-3.1-i2v-fast --duration 8 --resolution 1080p -o "${1:-out.mp4}"
