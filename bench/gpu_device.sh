#!/usr/bin/env bash
# One unattended GPU benchmark run on an H100/H200 machine without internet.
#
# The GPU image runs Python 3.12 with torch 2.11+cu130, transformers, huggingface_hub,
# safetensors and peft; diffusers, ftfy, wcwidth and importlib_metadata it lacks. Those
# travel beside the repository as Python 3.12 wheels in .whl/ (ignored by git; fill it with
# scripts/fetch-gpu-wheels.sh and carry it with the working tree). The script installs
# exactly those files, with --no-deps --no-index (nothing the image has is replaced, nothing
# is looked up), then times Wan 2.2 TI2V 5B at full size with random weights, 1280x704,
# 121 frames:
#   baseline   50-step recipe with guidance, timed over $STEPS steps
#   compile    the same with torch.compile on the transformer blocks
#   few_step   the distilled recipe: 3 steps, no guidance (FastWan2.2-TI2V-5B's schedule)
# Each variant runs in its own process with its own time limit; the JSON is rewritten after
# every variant, so whatever finished is kept if the run is cut short. The whole run is
# bounded to $BUDGET_S seconds (default 450: under 8 minutes). The table it prints has
# seconds per step, the VAE decode's seconds, the video's time over the FLOP limit and the
# peak GPU memory.
#
#   bash bench/gpu_device.sh [OUT_DIR]             # writes OUT_DIR/gpu_engine.json and .md
#   bash bench/gpu_device.sh --dry-run [OUT_DIR]   # on a CPU: tiny model, wheels installed
#                                                  # into a scratch folder and imported
#
# Through the device tool, carry the wheels with the working tree:
#   run(command="bash bench/gpu_device.sh $OUT", carry=[".whl"], timeout_s=540)
set -uo pipefail

cd "$(dirname "$0")/.."
DRY_RUN="${DRY_RUN:-0}"
if [ "${1:-}" = "--dry-run" ]; then DRY_RUN=1; shift; fi
OUT="${1:-${OUT:-bench-out}}"
PYTHON="${PYTHON:-python3}"
WHEELS_DIR="${WHEELS_DIR:-.whl}"
if [ "$DRY_RUN" = 1 ]; then
    STEPS="${STEPS:-3}"
    BUDGET_S="${BUDGET_S:-700}"  # a shared CPU is slow and uneven: generous limits
    VARIANTS="${VARIANTS:-baseline few_step}"  # torch.compile is for the GPU run
    EXTRA_ARGS="${EXTRA_ARGS:---toy}"
else
    STEPS="${STEPS:-10}"
    BUDGET_S="${BUDGET_S:-450}"
    VARIANTS="${VARIANTS:-baseline few_step compile}"
    EXTRA_ARGS="${EXTRA_ARGS:-}"
fi
# The wheels the GPU image lacks (distribution names as in the wheel files; the same list
# as bench/gpu_wheels.py, which checks them).
REQUIRED_WHEELS="diffusers ftfy wcwidth importlib_metadata zipp lazy_importer"
mkdir -p "$OUT"
started=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - started) )); }

log() { echo "[gpu_device $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/log.txt"; }

log "python: $($PYTHON -c 'import sys; print(sys.version.split()[0])')$([ "$DRY_RUN" = 1 ] && echo ' (dry run)')"
"$PYTHON" - <<'PY' 2>&1 | tee -a "$OUT/log.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    print(" ", i, torch.cuda.get_device_name(i))
PY

# 1. The wheels: every one present, each installable on Python 3.12 x86_64 Linux.
"$PYTHON" -m bench.gpu_wheels "$WHEELS_DIR" 2>&1 | tee -a "$OUT/log.txt"
wheels_ok=${PIPESTATUS[0]}

# 2. Install them (the dry run installs into a scratch folder and imports from there).
install_wheels() {  # extra pip arguments
    local files=()
    for name in $REQUIRED_WHEELS; do files+=("$(ls "$WHEELS_DIR"/"$name"-*.whl | head -n1)"); done
    log "installing with --no-deps --no-index: ${files[*]##*/}"
    "$PYTHON" -m pip install --quiet --no-deps --no-index "$@" "${files[@]}" 2>&1 | tee -a "$OUT/log.txt"
    return "${PIPESTATUS[0]}"
}
if [ "$DRY_RUN" = 1 ]; then
    if [ "$wheels_ok" = 0 ]; then
        scratch="$OUT/wheels-installed"
        rm -rf "$scratch"
        install_wheels --target "$scratch" || { log "installing the wheels failed"; exit 2; }
        PYTHONPATH="$scratch" "$PYTHON" -c \
            "import diffusers, ftfy, wcwidth, importlib_metadata; print('from the wheels:', diffusers.__file__)" \
            2>&1 | tee -a "$OUT/log.txt"
    else
        log "dry run: the wheels are not ready (above); the run goes on with what is installed"
    fi
elif ! "$PYTHON" -c "import diffusers, ftfy" 2>/dev/null; then
    [ "$wheels_ok" = 0 ] || { log "diffusers is not installed and .whl/ is not ready"; exit 2; }
    install_wheels || { log "installing the wheels failed"; exit 2; }
fi
"$PYTHON" -c "import diffusers; print('diffusers', diffusers.__version__)" 2>&1 | tee -a "$OUT/log.txt" \
    || { log "diffusers does not import"; exit 2; }

export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ "$DRY_RUN" = 1 ]; then
    # As on the GPU image: no OpenCV and no PyAV (kinema's motion engine and encoder need
    # them; the benchmark must not).
    absent="$(cd "$OUT" && pwd)/absent"
    mkdir -p "$absent"
    for module in cv2 av; do
        echo 'raise ImportError("not installed on the GPU image")' >"$absent/$module.py"
    done
    export PYTHONPATH="$absent:$PYTHONPATH"
fi
"$PYTHON" -c "import bench.gpu_engine, kinema.engines.diffusion.wan_ti2v, tests.tiny_pipelines" \
    2>&1 | tee -a "$OUT/log.txt"
[ "${PIPESTATUS[0]}" = 0 ] || { log "the benchmark does not import (above)"; exit 2; }

# 3. The variants, each in its own process, within what is left of the budget.
run_variant() {  # name, per-variant limit in seconds
    local name=$1 limit=$2 remaining
    remaining=$(left)
    if [ "$remaining" -lt 60 ]; then log "skipping $name: ${remaining}s left"; return; fi
    [ "$limit" -gt $(( remaining - 15 )) ] && limit=$(( remaining - 15 ))
    log "variant $name (limit ${limit}s)"
    # shellcheck disable=SC2086
    "$PYTHON" -m bench.gpu_engine $EXTRA_ARGS --variants "$name" --steps "$STEPS" \
        --isolate --variant-timeout "$limit" --json "$OUT/$name.json" \
        >>"$OUT/log.txt" 2>&1 || log "variant $name: exit $?"
}
declare -A LIMIT=([baseline]=150 [few_step]=120 [compile]=240)
if [ "$DRY_RUN" = 1 ]; then LIMIT=([baseline]=300 [few_step]=300); fi
for name in $VARIANTS; do run_variant "$name" "${LIMIT[$name]:-180}"; done

# 4. One JSON and one table from whatever finished.
"$PYTHON" - "$OUT" $VARIANTS <<'PY' 2>&1 | tee -a "$OUT/log.txt"
import json, sys
from pathlib import Path
from bench.gpu_engine import Row, table
out = Path(sys.argv[1])
rows = []
for name in sys.argv[2:]:
    path = out / f"{name}.json"
    if path.exists():
        rows += [Row(**row) for row in json.loads(path.read_text())]
(out / "gpu_engine.json").write_text(json.dumps([row.__dict__ for row in rows], indent=2))
(out / "gpu_engine.md").write_text(table(rows) + "\n")
print(table(rows))
if not rows or any(row.error for row in rows):
    sys.exit(1)
PY
status=${PIPESTATUS[0]}
log "done in $(( $(date +%s) - started ))s; results in $OUT/ (exit $status)"
exit "$status"
