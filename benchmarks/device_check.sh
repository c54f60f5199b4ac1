#!/usr/bin/env bash
# The one device check of the attention target. On a GPU machine it is planned as two calls of the
# device tool (600 s each at most); docs/attention.md gives each step's worst case.
#   first call (the default STEPS, deadline 540 s, worst case 510 s):
#     1. versions: GPU, clocks, driver, torch/Triton/cuDNN, `which nvcc ninja ncu`, CUDA_HOME, the
#        Landlock ABI and user namespaces, and an import check (30 s);
#     2. benchmark: every seed (the Triton seeds and the CUDA seed cuda_fa2.py) and every baseline
#        (cuDNN, FLASH, EFFICIENT, Flex, flash-attn, FA3): first a prepare phase builds, compiles,
#        autotunes and checks each of them for each configuration (written as it happens), then the
#        h100-mha rows are timed, then the GQA rows of avo while time allows (300 s);
#     3. gpu-tests: every seed against the fp32 reference on ragged and GQA shapes (bf16), -n 0,
#        confinement warnings not errors (90 s);
#     4. profile: the seed's torch.profiler table, then Nsight Compute from this side with its own
#        45 s timeout (90 s);
#   second call: STEPS="versions evolution" KEEP_REPORT=1 benchmarks/device_check.sh (worst 430 s):
#     a short evolution with the offline policy and its before/after table against cuDNN.
# Without a GPU the same script runs what needs none (about a minute on a quiet machine, deadline
# 400 s for a loaded one; CI runs it): the imports with
# bm25s/anthropic/pydantic blocked, the Triton seeds' static compile for sm_90a and the smoke suite in
# Triton's interpreter (the CUDA seed only runs on a GPU: `evoagent check attention
# kernels/attention/cuda_fa2.py` gives its static profile), a 2-trial evolution and the profile stage's
# static report. It fails (exit 1) when a step fails or the report has no seed numbers.
#
# Every step has its own time budget and a failing step does not stop the next. Results are rewritten
# after every preparation, configuration and step: $OUT/device_check.json and .md (OUT defaults to
# benchmarks/out), the log $OUT/device_check.log, and $OUT/evolved_best.py. Commit them with
#   python benchmarks/device_report.py save $OUT/device_check.json     (see benchmarks/results/README.md)
#
#   benchmarks/device_check.sh [--seed FILE ...]   # seeds default to every kernels/attention/*.py with attention() (without a GPU: the Triton ones)
#   benchmarks/device_check.sh --dry-run           # versions and the plan; nothing runs on a GPU
set -uo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
OUT="${OUT:-$PWD/benchmarks/out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
SEEDS=()
DRY_RUN=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seed) SEEDS+=(--seed "$2"); shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    *) echo "device_check.sh: unknown argument '$1'; expected --seed FILE or --dry-run" >&2; exit 2 ;;
  esac
done

GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then GPU=1; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if [[ $GPU -eq 0 ]]; then
  # As on the GPU machine: the optional packages cannot be imported (benchmarks/offline/sitecustomize.py).
  export PYTHONPATH="$PWD/benchmarks/offline:$PYTHONPATH"
fi
export PYTHONUNBUFFERED=1
export EVOAGENT_CACHE_DIR="${EVOAGENT_CACHE_DIR:-$(mktemp -d -t evoagent-cache-XXXXXX)}"
# One build of the CUDA seed's extension (about a minute on the GPU machine) serves the benchmark and
# the GPU tests (whose conftest gives each session its own EVOAGENT_CACHE_DIR).
export EVOAGENT_CUDA_CACHE="${EVOAGENT_CUDA_CACHE:-$EVOAGENT_CACHE_DIR/cuda}"
export TRITON_DEFAULT_FP_FUSION="${TRITON_DEFAULT_FP_FUSION:-1}"

if [[ $DRY_RUN -eq 1 ]]; then
  echo "== versions"
  [[ $GPU -eq 1 ]] && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader
  "$PY" -c 'import sys, torch, triton; print("python", sys.version.split()[0], "| torch", torch.__version__, "| triton", triton.__version__, "| cuda", torch.cuda.is_available())'
  echo "== plan (GPU=$GPU)"
  exec "$PY" benchmarks/attention_bench.py --dry-run "${SEEDS[@]}"
fi

if [[ "${KEEP_REPORT:-0}" != 1 ]]; then  # KEEP_REPORT=1 adds to an earlier report (a second call)
  rm -f "$OUT/device_check.json" "$OUT/device_check.md" "$OUT/device_check.log" "$OUT/evolved_best.py"
fi
exec > >(tee -a "$OUT/device_check.log") 2>&1
STARTED=$(date +%s)
if [[ $GPU -eq 1 ]]; then
  DEADLINE_S="${DEADLINE_S:-540}"
  STEPS=" ${STEPS:-versions benchmark gpu-tests profile} "  # a second call: STEPS="versions replay-tests evolution" KEEP_REPORT=1
else
  DEADLINE_S="${DEADLINE_S:-400}"  # about a minute on a quiet machine; the budgets are for a loaded one (CI)
  STEPS=" ${STEPS:-versions benchmark evolution profile} "
fi
FAILED=()

left() { echo $(( DEADLINE_S - ($(date +%s) - STARTED) )); }

# step NAME MAX_SECONDS COMMAND...: runs COMMAND under `timeout` (its own budget, never past the
# deadline), then records the exit code and time in the report.
step() {
  local name="$1" max="$2"; shift 2
  [[ "$STEPS" == *" $name "* ]] || { echo "== $name: not in STEPS"; return; }
  local limit; limit=$(left)
  (( limit > max )) && limit=$max
  if (( limit < 5 )); then
    echo "== $name: not started, no time left (at $(( $(date +%s) - STARTED )) s)"
    "$PY" benchmarks/device_steps.py record --out "$OUT" --step "$name" --rc 124 --seconds 0 --note "not started: no time left"
    FAILED+=("$name"); return
  fi
  echo "== $name (at $(( $(date +%s) - STARTED )) s, budget ${limit} s)"
  local t0 rc; t0=$(date +%s)
  timeout -k 10 "$limit" "$@"; rc=$?
  echo "== $name: exit $rc in $(( $(date +%s) - t0 )) s"
  "$PY" benchmarks/device_steps.py record --out "$OUT" --step "$name" --rc "$rc" --seconds "$(( $(date +%s) - t0 ))" \
    --note "budget ${limit} s" || true
  if (( rc != 0 )); then FAILED+=("$name"); fi
}

echo "== device check, GPU=$GPU, OUT=$OUT, deadline ${DEADLINE_S} s"
[[ $GPU -eq 1 ]] && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader
step versions 30 "$PY" benchmarks/device_steps.py versions --out "$OUT"
if [[ $GPU -eq 1 ]]; then
  step benchmark 300 "$PY" benchmarks/attention_bench.py --out "$OUT" --budget-s 270 "${SEEDS[@]}"
  # Correctness of every seed on ragged and GQA shapes; a confinement warning (a kernel without
  # Landlock ABI 6 or user namespaces) is reported, not turned into a failure; no -x.
  step gpu-tests 90 "$PY" -m pytest tests/gpu -m gpu -n 0 -v -p no:cacheprovider \
    -k "(matches_the_fp32_reference and bfloat16) or replays_to_the_output" \
    -W "default::evoagent.confinement.ConfinementWarning"
  step profile 90 "$PY" benchmarks/device_steps.py profile --out "$OUT" --ncu-timeout-s 45
  # The trusted replay on the GPU: the evaluator's scores and the attacks (a second call: STEPS="versions replay-tests
  # evolution" KEEP_REPORT=1); the first call's gpu-tests already replay one seed plan against its own wrapper.
  step replay-tests 150 "$PY" -m pytest tests/gpu/test_trusted_replay_gpu.py -m gpu -n 0 -v -p no:cacheprovider \
    -W "default::evoagent.confinement.ConfinementWarning"
  step evolution 400 "$PY" benchmarks/device_steps.py evolve --out "$OUT" --budget-s 330 "${SEEDS[@]}"
else
  step benchmark 150 "$PY" benchmarks/attention_bench.py --out "$OUT" --budget-s 120 "${SEEDS[@]}"
  step evolution 200 "$PY" benchmarks/device_steps.py evolve --out "$OUT" --budget-s 150 --trials 2 "${SEEDS[@]}"
  step profile 90 "$PY" benchmarks/device_steps.py profile --out "$OUT"
fi

echo "== report"
"$PY" benchmarks/device_report.py validate "$OUT/device_check.json" || FAILED+=(report)
cat "$OUT/device_check.md" 2>/dev/null
echo "== done in $(( $(date +%s) - STARTED )) s; failed steps: ${FAILED[*]:-none}"
[[ ${#FAILED[@]} -eq 0 ]]
