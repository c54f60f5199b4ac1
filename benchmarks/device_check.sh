#!/usr/bin/env bash
# The one GPU check of the attention target: versions, the GPU tests, and the seed kernel against
# PyTorch SDPA (cuDNN / FLASH / EFFICIENT) and flash-attn on the h100-mha and h100-d64 suites (bf16,
# causal and not). Writes benchmarks/results/<date>-<gpu>.json and .md (copied to $OUT when set).
#
#   benchmarks/device_check.sh            # on a CUDA machine, within 8 minutes
#   benchmarks/device_check.sh --dry-run  # prints versions and the plan; runs nothing on a GPU
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export EVOAGENT_CACHE_DIR="${EVOAGENT_CACHE_DIR:-$(mktemp -d -t evoagent-cache-XXXXXX)}"
export TRITON_DEFAULT_FP_FUSION="${TRITON_DEFAULT_FP_FUSION:-1}"
DRY_RUN=""
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN="--dry-run"; fi
STARTED=$(date +%s)

echo "== versions"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
else
  echo "nvidia-smi: not found"
fi
timeout 120 "$PY" - <<'EOF'
import importlib, platform, sys
print("python", sys.version.split()[0], platform.platform())
for name in ("torch", "triton", "numpy", "flash_attn", "flash_attn_interface"):
    try:
        print(name, getattr(importlib.import_module(name), "__version__", "present"))
    except Exception as exc:
        print(name, "not importable:", type(exc).__name__)
import torch
print("cuda runtime", torch.version.cuda, "| cuda available", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
EOF

GPU_TESTS_RC=0
if [[ -z "$DRY_RUN" ]]; then
  echo "== GPU tests"
  timeout 180 "$PY" -m pytest tests/gpu -m gpu -q -x -p no:cacheprovider -p no:warnings || GPU_TESTS_RC=$?
  echo "GPU tests exit code: $GPU_TESTS_RC"
fi

echo "== benchmarks (seed vs baselines)"
BENCH_RC=0
timeout 330 "$PY" benchmarks/attention_bench.py --suite h100-mha --suite h100-d64 --reps 20 --budget-s 280 \
  ${OUT:+--copy-to "$OUT"} $DRY_RUN || BENCH_RC=$?

echo "== done in $(( $(date +%s) - STARTED )) s (GPU tests rc=$GPU_TESTS_RC, benchmarks rc=$BENCH_RC)"
if [[ $GPU_TESTS_RC -ne 0 || $BENCH_RC -ne 0 ]]; then exit 1; fi
