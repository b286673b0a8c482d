#!/usr/bin/env bash
# Installs kinema into a virtualenv and brings the shipped portrait (a NASA photograph of
# astronaut Eileen Collins, public domain: src/kinema/assets/README.md) to life in out.mp4
# on the embedded defaults: SQLite, a local files directory and the CPU motion engine. She
# speaks from the first second, her mouth shaping each sound, as the camera pushes in.
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
"$venv/bin/kinema" generate src/kinema/assets/astronaut.jpg \
  "She says: 'Welcome to kinema. Everything you see and hear was made on this machine.' The camera slowly pushes in as she smiles." \
  --model google/veo-3.1-i2v-fast --duration 8 --resolution 1080p -o "${1:-out.mp4}"
