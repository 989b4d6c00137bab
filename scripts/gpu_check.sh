#!/usr/bin/env bash
# The GPU check (`make gpu-check`): what only a CUDA machine can test, in one command, about
# 6-8 minutes on an H200 (installing from local wheels included):
#   1. tests/test_cuda.py: batched augmentation on the GPU through pinned memory (the same
#      crops as on the CPU for the same seed), the precision chosen for this GPU, `fit` with
#      fp16 + GradScaler and with bf16, `evaluate` under inference mode;
#   2. the chapter's two trainings (fine-tuned and from scratch, its settings) on the stand-in
#      at 224 px, on the GPU;
#   3. the benchmark's A/B at 224 px against d2l 1.0.3's train_ch13 on the same GPU (goal: 10x
#      d2l's training examples/s, accuracy within noise), written to
#      benchmarks/results/cuda.{json,md}.
# It ends with a short summary; it fails if a step fails (not if the 10x goal is missed, which
# the summary reports).
#
# Offline: GPU machines have no internet, so this uses only what the checkout carries.
# Python: $PYTHON, else .venv/bin/python, else python3, as it is when it can import everything
# needed (torch with CUDA, torchvision, pytest, d2l, ...). Otherwise, when a folder `.whl/` of
# wheels is present, it installs requirements.txt, benchmarks/requirements.txt and d2l 1.0.3
# (--no-deps) from there only (pip --no-index) into .venv-gpu (which sees the system's packages,
# a preinstalled torch included). Fill `.whl/` on a machine with internet, for the GPU
# machine's Python and platform:
#     pip download -d .whl -r requirements.txt -r benchmarks/requirements.txt
#     pip download -d .whl --no-deps d2l==1.0.3
# d2lhelpers is used from this checkout (PYTHONPATH), not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

export D2LHELPERS_DATA="${D2LHELPERS_DATA:-$PWD/.data}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONHASHSEED=0
MODULES="torch torchvision numpy PIL tqdm matplotlib pytest d2l pandas scipy requests"
SUMMARY=$(mktemp)
LOG=$(mktemp)
trap 'rm -f "$SUMMARY" "$LOG"' EXIT

note() { echo "$*" | tee -a "$SUMMARY"; }

missing_modules() {  # prints the modules of $MODULES that "$1" cannot import
  "$1" -c 'import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))' $MODULES
}

choose_python() {
  local python="${PYTHON:-}"
  if [[ -z "$python" ]]; then
    if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
  fi
  local missing
  missing=$(missing_modules "$python")
  if [[ -n "$missing" && -d .whl ]]; then
    echo "== $python lacks: $missing; installing from .whl/ into .venv-gpu" >&2
    [[ -x .venv-gpu/bin/python ]] || python3 -m venv --system-site-packages .venv-gpu >&2
    python=.venv-gpu/bin/python
    "$python" -m pip install --quiet --no-index --find-links .whl \
      -r requirements.txt -r benchmarks/requirements.txt >&2
    "$python" -m pip install --quiet --no-index --find-links .whl --no-deps d2l==1.0.3 >&2
    missing=$(missing_modules "$python")
  fi
  if [[ -n "$missing" ]]; then
    echo "gpu-check: $python cannot import: $missing. This machine has no internet: put the" \
      "wheels in .whl/ (see the header of $0) or set PYTHON to a Python that has them." >&2
    exit 1
  fi
  echo "$python"
}

PY=$(choose_python)
"$PY" -c 'import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"gpu-check: torch {torch.__version__} sees no CUDA GPU (CUDA build: {torch.version.cuda}).")
major, minor = torch.cuda.get_device_capability()
print(f"GPU: {torch.cuda.get_device_name()} (compute capability {major}.{minor}), "
      f"torch {torch.__version__}, CUDA {torch.version.cuda}, {sys.executable}")' | tee -a "$SUMMARY"

echo "== 1/3 unit tests of the CUDA paths"
start=$SECONDS
"$PY" -m pytest -q -p no:randomly -p no:cacheprovider -m cuda -rs tests/test_cuda.py 2>&1 \
  | tee "$LOG"
note "unit tests: $(tail -n 1 "$LOG") ($((SECONDS - start)) s)"

echo "== 2/3 the chapter on the stand-in at 224 px"
start=$SECONDS
"$PY" - <<'EOF' | tee -a "$SUMMARY"
import dataclasses
import sys

import torch
import torchvision

from d2lhelpers.chapter import CHAPTER_SETTINGS
from d2lhelpers.data import Recipe
from d2lhelpers.finetune import train_fine_tuning
from d2lhelpers.models import make_target_model
from d2lhelpers.run import Run
from d2lhelpers.workspace import prepare

ws = dataclasses.replace(prepare("standin", progress=False), recipe=Recipe(224))
data, settings = ws.data(), CHAPTER_SETTINGS["standin"]
steps = {"batch_size": settings["batch_size"], "num_epochs": settings["num_epochs"]}
torch.manual_seed(0)
fine = make_target_model(ws.source_model(), num_classes=2)
fine = train_fine_tuning(
    fine, data, settings["finetune_lr"], run=Run(label="fine-tuned"), **steps
)
torch.manual_seed(0)
scratch = torchvision.models.resnet18(num_classes=2)
scratch = train_fine_tuning(
    scratch, data, settings["scratch_lr"], param_group=False, run=Run(label="scratch"), **steps
)
for history in (fine, scratch):
    last = history.final
    if history.status != "ok" or last is None:
        sys.exit(f"chapter at 224 px: {history.label} {history.status_text()}")
    print(
        f"chapter at 224 px, {history.label}: test acc {last.held_out_acc:.3f}, "
        f"{last.examples_per_sec:.0f} examples/s ({history.precision})"
    )
gap = 100 * (fine.final.held_out_acc - scratch.final.held_out_acc)
print(f"chapter at 224 px: fine-tuned - scratch = {gap:+.1f} points (the 64 px lesson needs 10)")
EOF
note "   ($((SECONDS - start)) s)"

echo "== 3/3 benchmark A/B at 224 px against d2l's train_ch13"
start=$SECONDS
"$PY" -m benchmarks.bench --sizes 224 --skip-frozen --device cuda --name cuda
"$PY" - <<'EOF' | tee -a "$SUMMARY"
import json

row = json.load(open("benchmarks/results/cuda.json"))["summary"]["sizes"]["224"]
ratio, acc = row["ratio_train_images_per_sec"], row["accuracy"]
ref, ours = (row[side]["train_images_per_sec"]["median"] for side in ("reference", "ours"))
print(
    f"benchmark at 224 px: d2l {ref:.0f} img/s, ours {ours:.0f} img/s; ours / d2l "
    f"{ratio['min']:.1f} / {ratio['median']:.1f} / {ratio['max']:.1f} (min / med / max): "
    f"{'goal of 10x met' if ratio['min'] >= 10 else 'GOAL OF 10x NOT MET'}"
)
if acc is not None:
    print(
        f"benchmark accuracy: d2l {acc['reference_mean']:.3f}, ours {acc['ours_mean']:.3f} "
        f"(paired differences {100 * acc['difference']['min']:+.1f} to "
        f"{100 * acc['difference']['max']:+.1f} points over {acc['seeds']} seeds)"
    )
EOF
note "   ($((SECONDS - start)) s; benchmarks/results/cuda.{json,md})"

echo
echo "== gpu-check summary (${SECONDS} s in all)"
cat "$SUMMARY"
