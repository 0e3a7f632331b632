#!/usr/bin/env bash
# Make the segmentation stack's own environment (TotalSegmentator, nnU-Net, MONAI, CPU or CUDA torch):
#   .cache/seg-venv   a venv holding radagent (editable) + the pins below; the project's .venv stays light.
# The order matters: torch==2.13.0 first, then the stack with torch pinned again. An unpinned
# `pip install TotalSegmentator nnunetv2 monai` replaces torch 2.13.0+cpu with a CUDA torch 2.14 and
# ~15 nvidia-* wheels (nnunetv2>=2.6 -> dynamic-network-architectures>=0.4 -> timm -> torchvision);
# see ../shared/docs/PERCEPTION_NOTES.md. TotalSegmentator 2.18.0 (liver_lesions) needs nnunetv2 >= 2.6
# (its custom_trainers import nnunetv2.training.dataloading.data_loader), so timm and torchvision come
# along; PyPI's torchvision 0.28.0 is a CUDA build that does not import beside CPU torch ("operator
# torchvision::nms does not exist", measured here), and nothing radagent runs needs it: they are removed
# again (perception/segment/trainers.py registers the trainers so nnU-Net never searches modules that import
# timm). With a CPU torchvision at hand (TORCH_INDEX_URL), it is kept instead.
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
  "TotalSegmentator==2.18.0"
  "nnunetv2==2.8.1"
  "dynamic-network-architectures==0.4.4"
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
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then  # a torchvision built for this torch (CPU or CUDA) from the same index
  "${PIP[@]}" install -q "$TORCH_PIN" "torchvision==0.28.0" --index-url "$TORCH_INDEX_URL"
fi
"${PIP[@]}" install -q "$TORCH_PIN" "${PINS[@]}"
if ! "$VENV/bin/python" -c "import torchvision" 2>/dev/null; then
  # PyPI's CUDA torchvision beside CPU torch: remove it and timm (nothing radagent runs imports them)
  "${PIP[@]}" uninstall -q -y torchvision timm
fi
# nothing may have replaced torch
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md, sys
if not md.version("torch").startswith("2.13.0"):
    sys.exit(f"seg-env: expected torch 2.13.0, found {md.version('torch')}")
PY
# pip check, except dynamic-network-architectures' timm (only its Primus/ViT architectures import it)
if ! out=$("${PIP[@]}" check 2>&1); then
  bad=$(grep -v "^dynamic-network-architectures .* requires timm, which is not installed" <<<"$out" || true)
  if [[ -n "$bad" ]]; then echo "$out"; exit 1; fi
fi
"$VENV/bin/python" -c "import torch, monai, nnunetv2, totalsegmentator; print('seg-env: torch', torch.__version__, \
'monai', monai.__version__, 'cuda', torch.cuda.is_available())"
echo "$WANT" > "$STAMP"
echo "seg-env: venv ready in $(since "$t") s ($(du -sh "$VENV" | cut -f1))"
