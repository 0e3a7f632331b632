#!/usr/bin/env bash
# Make the segmentation stack's own environment (TotalSegmentator, nnU-Net, MONAI, CPU or CUDA torch):
#   .cache/seg-venv   a venv holding radagent (editable) + the pins below; the project's .venv stays light.
# The order matters: torch==2.13.0 first, then the stack with torch pinned again. An unpinned
# `pip install TotalSegmentator nnunetv2 monai` replaces torch 2.13.0+cpu with a CUDA torch 2.14 and
# ~15 nvidia-* wheels (nnunetv2>=2.6 -> dynamic-network-architectures>=0.4 -> timm -> torchvision);
# see ../shared/docs/PERCEPTION_NOTES.md.
# Idempotent: a stamp file holding the pins skips the install (a second run takes about a second).
# Usage: bash scripts/setup_seg_env.sh (or make seg-env).
# Env: PYTHON (default python3, >= 3.11), SEG_VENV, TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu
# on a CPU-only CI machine whose pip has no local CPU wheel: PyPI serves only the CUDA build of torch).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${SEG_VENV:-.cache/seg-venv}
TORCH_PIN="torch==2.13.0"
PINS=(
  "TotalSegmentator==2.12.0"
  "nnunetv2==2.5.2"
  "dynamic-network-architectures==0.3.1"
  "monai==1.6.1"
  "pyyaml>=6"
  "pytest>=8"
)
STAMP="$VENV/.radagent-installed"
WANT="$TORCH_PIN ${PINS[*]} $(sha1sum pyproject.toml | cut -c1-12)"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] \
   && "$VENV/bin/python" -c "import torch, monai, nnunetv2, totalsegmentator, perception" 2>/dev/null; then
  echo "seg-env: $VENV up to date"
  exit 0
fi
t=$(now)
if ! "$VENV/bin/python" -c "import sys" 2>/dev/null; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi
rm -f "$STAMP"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip
# torch first: the CPU wheel where the machine has one (pip find-links), else PyPI's (CUDA) build.
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
  "${PIP[@]}" install -q "$TORCH_PIN" --index-url "$TORCH_INDEX_URL"
else
  "${PIP[@]}" install -q "$TORCH_PIN"
fi
echo "seg-env: torch installed ($(since "$t") s)"
"${PIP[@]}" install -q -e ".[test]"
"${PIP[@]}" install -q "$TORCH_PIN" "${PINS[@]}"
# nothing may have replaced torch, nor brought torchvision (a CUDA build that breaks beside CPU torch)
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md, sys
tv = [d for d in ("torchvision", "timm") if any(x.metadata["Name"].lower() == d for x in md.distributions())]
if not md.version("torch").startswith("2.13.0"):
    sys.exit(f"seg-env: expected torch 2.13.0, found {md.version('torch')}")
if tv:
    sys.exit(f"seg-env: unexpected packages {tv} were pulled in; they break beside CPU torch")
PY
"${PIP[@]}" check
"$VENV/bin/python" -c "import torch, monai, nnunetv2, totalsegmentator; print('seg-env: torch', torch.__version__, \
'monai', monai.__version__, 'cuda', torch.cuda.is_available())"
echo "$WANT" > "$STAMP"
echo "seg-env: venv ready in $(since "$t") s ($(du -sh "$VENV" | cut -f1))"
