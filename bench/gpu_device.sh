#!/usr/bin/env bash
# One unattended GPU benchmark run on an H100/H200 machine without internet.
#
# The machine has torch, transformers, accelerate, safetensors and huggingface_hub; diffusers
# and the rest it lacks travel beside the repository as wheels in .whl/ (ignored by git; how
# to fill it: docs/gpu.md, "Benchmark on a machine without internet"). The script installs
# them from there only, then times Wan 2.2 TI2V 5B at full size with random weights,
# 1280x704, 121 frames:
#   baseline   50-step recipe with guidance, timed over $STEPS steps
#   compile    the same with torch.compile on the transformer blocks
#   few_step   the distilled recipe: 3 steps, no guidance (FastWan2.2-TI2V-5B's schedule)
# Each variant runs in its own process with its own time limit; the JSON is rewritten after
# every variant, so whatever finished is kept if the run is cut short. The whole run is
# bounded to $BUDGET_S seconds (default 450: under 8 minutes).
#
#   bash bench/gpu_device.sh [OUT_DIR]          # writes OUT_DIR/gpu_engine.json and .md
set -uo pipefail

cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-bench-out}}"
STEPS="${STEPS:-10}"
BUDGET_S="${BUDGET_S:-450}"
PYTHON="${PYTHON:-python3}"
VARIANTS="${VARIANTS:-baseline few_step compile}"
EXTRA_ARGS="${EXTRA_ARGS:-}"  # e.g. --toy: a dry run of this script on a CPU
mkdir -p "$OUT"
started=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - started) )); }

log() { echo "[gpu_device $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/log.txt"; }

log "python: $($PYTHON -c 'import sys; print(sys.version.split()[0])')"
"$PYTHON" - <<'EOF' 2>&1 | tee -a "$OUT/log.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    print(" ", i, torch.cuda.get_device_name(i))
EOF

# 1. Install what the machine lacks, from the wheels beside the repository only.
if ! "$PYTHON" -c "import diffusers" 2>/dev/null; then
    if [ ! -d .whl ] || [ -z "$(ls .whl/*.whl 2>/dev/null)" ]; then
        log "no diffusers installed and no wheels in .whl/: see docs/gpu.md"; exit 2
    fi
    log "installing from .whl/: $(ls .whl | tr '\n' ' ')"
    "$PYTHON" -m pip install --no-index --find-links .whl --quiet diffusers ftfy wcwidth \
        2>&1 | tee -a "$OUT/log.txt"
fi
"$PYTHON" -c "import diffusers; print('diffusers', diffusers.__version__)" 2>&1 | tee -a "$OUT/log.txt" \
    || { log "diffusers does not import"; exit 2; }

export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# 2. The variants, each in its own process, within what is left of the budget.
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
for name in $VARIANTS; do run_variant "$name" "${LIMIT[$name]:-180}"; done

# 3. One JSON and one table from whatever finished.
"$PYTHON" - "$OUT" $VARIANTS <<'EOF' 2>&1 | tee -a "$OUT/log.txt"
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
EOF
log "done in $(( $(date +%s) - started ))s; results in $OUT/"
