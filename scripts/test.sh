#!/usr/bin/env bash
# Sets up a virtualenv with kinema and its test tools, makes sure PostgreSQL is reachable
# (starting the local cluster if it is not), then runs lint, types and the whole suite.
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

./scripts/install-chromium.sh
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
ensure_postgres
export KINEMA_TEST_REQUIRE_POSTGRES=1
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
