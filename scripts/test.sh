#!/usr/bin/env bash
# Sets up a virtualenv with kinema and its test tools, then runs lint, types and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-chromium.sh
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
