#!/usr/bin/env bash
# One prepared check for a CUDA machine (< 8 minutes), after `make setup` and nothing else:
#   1. a few bf16-mixed steps of each image-folder recipe (the paper's settings) on the GPU, on the small folder of
#      real images that the CPU tests build (scripts/gpu_check_recipes.py);
#   2. the overhead benchmark's step and mixing parts on cuda, ratios side by side (benchmarks/overhead.py
#      --accelerator cuda --precision bf16-mixed --parts step mix --repeats 3: its full presets, 3 repeats; it
#      trains on Fashion-MNIST, which `make setup` installs);
#   3. the training hot path between checks under torch.cuda.set_sync_debug_mode (warn, then "error"): no host sync
#      made by the package (scripts/gpu_check_hot_path.py).
# Writes benchmarks/results/gpu_check_{recipes,overhead,hot_path}.{json,md}, each naming the GPU, and exits non-zero
# when any part fails (every part runs regardless; the exit status is the first failure's).
#   bash scripts/gpu_check.sh                 # from the repository root or anywhere
#   VENV=/path/to/venv bash scripts/gpu_check.sh
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${VENV:-$ROOT/.venv}/bin/python"
OUT="$ROOT/benchmarks/results"
# each part's wall-clock limit (seconds); together under 8 minutes
LIMIT_RECIPES=${LIMIT_RECIPES:-120}
LIMIT_OVERHEAD=${LIMIT_OVERHEAD:-210}
LIMIT_HOT_PATH=${LIMIT_HOT_PATH:-120}

if [[ ! -x "$PY" ]]; then
    echo "gpu_check: no Python at $PY: run \`make setup\` first (or set VENV)" >&2
    exit 2
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch sees no CUDA device on this machine: nothing to check" >&2
    exit 2
fi
"$PY" -c "import torch; print('gpu_check on', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
export PYTHONWARNINGS=ignore WANDB_MODE=disabled

status=0
run_part() {  # name, limit, command...
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    echo "== $name (limit ${limit} s)"
    timeout "$limit" "$@"
    local rc=$?
    echo "== $name: exit $rc in $((SECONDS - started)) s"
    if [[ $rc -ne 0 && $status -eq 0 ]]; then
        status=$rc
    fi
}

run_part recipes "$LIMIT_RECIPES" "$PY" scripts/gpu_check_recipes.py --device cuda --precision bf16-mixed \
    --steps 5 --out "$OUT/gpu_check_recipes"
run_part overhead "$LIMIT_OVERHEAD" "$PY" benchmarks/overhead.py --allow-dirty --accelerator cuda \
    --precision bf16-mixed --parts step mix --repeats 3 --out "$OUT/gpu_check_overhead"
run_part hot_path "$LIMIT_HOT_PATH" "$PY" scripts/gpu_check_hot_path.py --device cuda --precision bf16-mixed \
    --steps 40 --warmup 10 --out "$OUT/gpu_check_hot_path"

ls -l "$OUT"/gpu_check_* 2>/dev/null
if [[ $status -eq 0 ]]; then echo "gpu_check: all parts passed"; else echo "gpu_check: FAILED (exit $status)" >&2; fi
exit $status
