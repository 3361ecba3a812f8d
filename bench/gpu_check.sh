#!/usr/bin/env bash
# hybridnb GPU check: LLM labelling throughput (vLLM if importable, else transformers) and the
# embedding/topic path, on one NVIDIA GPU in < 8 minutes.  WEIGHTS ARE RANDOM: throughput only.
#   bench/gpu_check.sh                 # on the GPU machine (rate: HYBRIDNB_LOCAL_GPU_HOUR_USD or 2.50)
#   bench/gpu_check.sh --dry-run       # tiny shapes on a CPU, to test the script
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec timeout 470 "$PY" bench/gpu_check.py "$@"
