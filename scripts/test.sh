#!/usr/bin/env bash
# Sets up a virtualenv with kinema and its test tools, the Google GenAI 3.x SDKs the Vertex
# AI tests drive (a virtualenv of their own and an npm folder: the suite installs nothing),
# makes sure PostgreSQL is reachable (starting the local cluster if it is not), then runs
# lint, types and the whole suite.
# The PostgreSQL tests are required here: an unreachable server fails the run, it is never
# skipped. KINEMA_TEST_POSTGRES_URL names another server.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_HOST=127.0.0.1
PG_PORT=5432

postgres_ready() {
  if command -v pg_isready >/dev/null 2>&1 && [ -z "${KINEMA_TEST_POSTGRES_URL:-}" ]; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 3
  else
    .venv/bin/python - <<'PY'
import os, sys
import psycopg
url = os.environ.get("KINEMA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
try:
    psycopg.connect(url.replace("+psycopg", ""), connect_timeout=3).close()
except psycopg.Error as error:
    sys.exit(f"{error}")
PY
  fi
}

ensure_postgres() {
  postgres_ready && return 0
  if [ -z "${KINEMA_TEST_POSTGRES_URL:-}" ] && command -v pg_ctlcluster >/dev/null 2>&1 \
    && [ -d /etc/postgresql ]; then
    for version in $(ls /etc/postgresql); do
      echo "starting PostgreSQL $version (main)" >&2
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 1 30); do
      postgres_ready && return 0
      sleep 1
    done
  fi
  echo "error: PostgreSQL is not reachable at ${KINEMA_TEST_POSTGRES_URL:-$PG_HOST:$PG_PORT}" \
    "and could not be started; the PostgreSQL tests need it" >&2
  return 1
}

# google-genai 3.x sends generate_videos only to Vertex AI; the test extra pins 2.x for the
# Gemini-mode tests, so 3.x lives in its own virtualenv (tests/test_api_vertex.py).
GENAI3=google-genai==3.6.1
GENAI3_JS=@google/genai@3.6.1  # the Interactions API tests need 3.6.1

install_sdks() {
  if [ "$(cat .venv-genai3/.ready 2>/dev/null)" != "$GENAI3" ]; then
    python3 -m venv .venv-genai3
    .venv-genai3/bin/python -m pip install -q --disable-pip-version-check "$GENAI3"
    echo "$GENAI3" > .venv-genai3/.ready
  fi
  if [ "$(cat .node-genai3/.ready 2>/dev/null)" != "$GENAI3_JS" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "warning: npm is not installed; the @google/genai JS test will be skipped" \
        "(it fails under CI=true)" >&2
      return 0
    fi
    mkdir -p .node-genai3
    npm install --silent --prefix .node-genai3 --no-save "$GENAI3_JS"
    echo "$GENAI3_JS" > .node-genai3/.ready
  fi
}

./scripts/install-chromium.sh
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
install_sdks
ensure_postgres
export KINEMA_TEST_REQUIRE_POSTGRES=1
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
