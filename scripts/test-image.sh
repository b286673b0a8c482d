#!/usr/bin/env bash
# Build kinema's container image and run it for real, with no image registry:
#
# 1. a Debian bookworm base made with debootstrap from Debian's packages, `docker import`ed;
# 2. the image (Dockerfile) built on it; the package index's CA (pip's cert) goes in as a
#    build secret and is checked to be in no layer;
# 3. the CPU image on its defaults: healthy, not root, and seed 001's Python client gets
#    its video from it;
# 4. compose.yaml (API, two workers, PostgreSQL, an S3-compatible store; locally built
#    stand-ins for the postgres and minio images) with a worker killed with SIGKILL while
#    it renders: every job completes, and the lost lease is logged.
#
# Needs root (debootstrap, dockerd). Installs docker.io, docker-compose and debootstrap
# with apt-get when missing and starts dockerd when none answers. Prints how long each
# step took. Leaves the base image for the next run (KINEMA_REBUILD_BASE=1 remakes it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKER=/usr/bin/docker            # Debian's client: BuildKit built in (no buildx needed)
COMPOSE=/usr/bin/docker-compose
BASE=${KINEMA_BASE_IMAGE:-kinema-base:bookworm}
IMAGE=${KINEMA_TEST_IMAGE:-kinema:test}
MIRROR=${KINEMA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PROJECT=kinematest
CPU_PORT=${KINEMA_TEST_CPU_PORT:-18801}
export KINEMA_API_PORT=${KINEMA_TEST_API_PORT:-18800}
export KINEMA_S3_PORT=${KINEMA_TEST_S3_PORT:-18900}
PY=${KINEMA_TEST_PYTHON:-$ROOT/.venv/bin/python}   # any Python with httpx and requests
[ -x "$PY" ] || PY=python3
WORK=$(mktemp -d)
SECONDS=0
step() { echo "== [${SECONDS} s] $*"; }
compose() { "$COMPOSE" -p "$PROJECT" -f "$ROOT/compose.yaml" "$@"; }

cleanup() {
    "$DOCKER" rm -f kinema-test-cpu > /dev/null 2>&1 || true
    compose down -v --remove-orphans > /dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- 0. tools and the daemon ---
missing=()
[ -x "$DOCKER" ] || missing+=(docker.io)
[ -x "$COMPOSE" ] || missing+=(docker-compose)
command -v debootstrap > /dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" > "$WORK/apt.log"
fi
if ! "$DOCKER" info > /dev/null 2>&1; then
    step "starting dockerd"
    nohup dockerd > /var/log/kinema-test-dockerd.log 2>&1 &
    for _ in $(seq 60); do "$DOCKER" info > /dev/null 2>&1 && break; sleep 1; done
fi

# --- 1. the base, from Debian's packages ---
if [ -n "${KINEMA_REBUILD_BASE:-}" ] || ! "$DOCKER" image inspect "$BASE" > /dev/null 2>&1; then
    step "debootstrap bookworm into $WORK/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$WORK/rootfs" "$MIRROR" > "$WORK/debootstrap.log"
    rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
    step "docker import as $BASE"
    tar -C "$WORK/rootfs" -c . | "$DOCKER" import -c 'ENV LANG=C.UTF-8' -c 'CMD ["bash"]' - "$BASE" > /dev/null
    rm -rf "$WORK/rootfs"
fi

# --- 2. the image, with the package index's CA as a build secret ---
CERT=${PIP_CERT:-$(python3 -m pip config get global.cert 2> /dev/null || true)}
CERT=${CERT:-/etc/ssl/certs/ca-certificates.crt}
step "building $IMAGE on $BASE (pip's CA: $CERT, as a build secret)"
export DOCKER_BUILDKIT=1
build() {  # build ARGS... with the CA secret and the host's network for the package index
    "$DOCKER" build --network host --build-arg BASE="$BASE" \
        --secret id=pip_cert,src="$CERT" "$@" > "$WORK/build.log" 2>&1 \
        || { tail -40 "$WORK/build.log"; exit 1; }
}
build -t "$IMAGE" "$ROOT"
# The CA's own lines (those Debian's bundle lacks) must be in no file of the image.
"$DOCKER" run --rm "$BASE" cat /etc/ssl/certs/ca-certificates.crt > "$WORK/debian.crt"
grep -vxF -f "$WORK/debian.crt" "$CERT" | grep -v -- '-----' | head -5 > "$WORK/ca-lines" || true
container=$("$DOCKER" create "$IMAGE")
if [ -s "$WORK/ca-lines" ] && "$DOCKER" export "$container" | grep -aqF -f "$WORK/ca-lines"; then
    echo "FAIL: the build secret's CA is inside the image" >&2
    exit 1
fi
"$DOCKER" rm "$container" > /dev/null
step "image built; the CA is in none of its files ($(wc -l < "$WORK/ca-lines") of its lines checked)"

# --- 3. the CPU image on embedded defaults, and seed 001's client against it ---
"$DOCKER" run -d --name kinema-test-cpu -p "127.0.0.1:$CPU_PORT:8000" "$IMAGE" > /dev/null
for _ in $(seq 120); do
    health=$("$DOCKER" inspect -f '{{.State.Health.Status}}' kinema-test-cpu)
    [ "$health" = healthy ] && break
    sleep 1
done
[ "$health" = healthy ] || { "$DOCKER" logs kinema-test-cpu | tail -20; exit 1; }
user=$("$DOCKER" exec kinema-test-cpu id -u)
[ "$user" != 0 ] || { echo "FAIL: the server runs as root" >&2; exit 1; }
step "CPU container healthy, running as uid $user"
KEY=$("$DOCKER" exec kinema-test-cpu kinema keys create seed 2> /dev/null)
"$PY" "$ROOT/scripts/image/run_seed_client.py" "http://127.0.0.1:$CPU_PORT" "$KEY" | tail -2
"$DOCKER" rm -f kinema-test-cpu > /dev/null
step "seed 001's client got its video from the container"

# --- 4. compose: API, two workers, PostgreSQL, S3; a worker killed mid-job ---
step "building the stand-ins for the postgres and minio images"
build -t kinema-local-postgres -f "$ROOT/deploy/local/postgres.Dockerfile" "$ROOT/deploy/local"
build -t kinema-local-s3 -f "$ROOT/deploy/local/s3.Dockerfile" "$ROOT/deploy/local"
sed -e "s#localhost:9000#localhost:$KINEMA_S3_PORT#" -e "s#localhost:8000#localhost:$KINEMA_API_PORT#" \
    "$ROOT/deploy/compose.env" > "$WORK/compose.env"
export KINEMA_IMAGE=$IMAGE KINEMA_ENV_FILE=$WORK/compose.env
export KINEMA_POSTGRES_IMAGE=kinema-local-postgres KINEMA_S3_IMAGE=kinema-local-s3
export KINEMA_S3_COMMAND="/opt/moto/bin/moto_server -H 0.0.0.0 -p 9000"
step "compose up"
compose up -d > "$WORK/compose.log" 2>&1 || { cat "$WORK/compose.log"; exit 1; }
for _ in $(seq 180); do
    curl -sf "http://127.0.0.1:$KINEMA_API_PORT/readyz" > /dev/null && break
    sleep 1
done
curl -sf "http://127.0.0.1:$KINEMA_API_PORT/readyz" > /dev/null \
    || { compose logs --tail 30; exit 1; }
KEY=$(compose exec -T api kinema keys create compose 2> /dev/null | tr -d '\r')
step "stack ready; three jobs, then SIGKILL to worker-1 while it renders"
"$PY" "$ROOT/scripts/image/check_compose.py" "http://127.0.0.1:$KINEMA_API_PORT" "$KEY" 3 \
    -- "$COMPOSE" -p "$PROJECT" -f "$ROOT/compose.yaml" kill -s SIGKILL worker-1
compose exec -T api kinema jobs list --json > "$WORK/jobs.json"
"$PY" - "$WORK/jobs.json" <<'PY'
import json, sys
jobs = json.load(open(sys.argv[1]))
assert len(jobs) == 3 and all(j["status"] == "succeeded" for j in jobs), jobs
assert sorted(j["attempt"] for j in jobs)[-1] == 2, [j["attempt"] for j in jobs]
print("jobs:", ", ".join(f"{j['id'][:8]} attempt {j['attempt']}" for j in jobs))
PY
compose logs --no-color api worker-2 > "$WORK/logs.txt" 2>&1
grep "lease expired on worker" "$WORK/logs.txt" | sed 's/^/  /'
grep -q "lease expired on worker" "$WORK/logs.txt"
compose exec -T api kinema workers | sed 's/^/  /'
step "every job completed once; the lost lease was logged"
echo "test-image: passed in ${SECONDS} s"
