#!/usr/bin/env bash
# The full-size benchmarks and a 30-epoch training on a fresh GPU machine, offline, in under
# 8 minutes:
#
#   bash benchmarks/gpu_check.sh ARCHIVE WHEELS_DIR OUT_DIR
#
# ARCHIVE     the CIFAR-10 JPEG archive: a .tar.gz (or a folder) of train/<class>/*.jpg and
#             test/<class>/*.jpg.
# WHEELS_DIR  the only place packages are installed from (pip --no-index, nothing is
#             downloaded): the wheels of whatever the machine's python3 lacks among the
#             project's dependencies (pyproject.toml: torch and torchvision built for the
#             machine's CUDA, numpy, pandas, matplotlib, pillow, pyyaml), scikit-learn, and
#             setuptools >= 70.1 (the project is installed without build isolation, so
#             setuptools comes from there or from python3's own packages). It may be empty
#             when python3 already holds them all.
# OUT_DIR     receives device.txt, one <step>.txt per step (its whole output),
#             train_throughput.json, layer_si.csv, e2e.json, and summary.txt (every step's
#             status and seconds, then its main figures).
#
# Steps, in this order:
#   install           a virtual environment in a temporary folder, which also sees python3's
#                     own packages (a CUDA build of torch already on the machine, say); the
#                     missing ones from WHEELS_DIR; the project, editable
#   device            nvidia-smi and what torch sees
#   decode            the archive, once, to an npz that the next steps read
#   train_throughput  one epoch of the 50,000 training images at width 1: engine, engine
#                     with torch.compile, and the common DataLoader baseline; 2 rounds
#   e2e               30 epochs at width 1 (lr 0.05, step 15), then the test accuracy
#   layer_si          the 19-row SI table at width 1, N = 5,000, against scikit-learn
#   selection         forward selection, N = 5,000, 512 channels of 2x2: full ranking, fast
#                     path only (the naive reference would not fit in the time)
#   resume_save       what the per-epoch resumable state (183 MB at width 1) costs an epoch
#                     of about 1.5 s: none, written inline, written in the background
# Each step runs under `timeout`, within its own limit (LIMIT_* below) and never past
# BUDGET_S seconds after the start; both can be set from the environment. A step that fails
# or runs out of time is recorded in summary.txt and the next one runs. The temporary folder
# (environment and npz) is removed at the end.
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: bash benchmarks/gpu_check.sh ARCHIVE WHEELS_DIR OUT_DIR" >&2
  exit 2
fi
archive=$(realpath "$1")
wheels=$(realpath "$2")
[ -e "$archive" ] || { echo "no archive at $1" >&2; exit 2; }
[ -d "$wheels" ] || { echo "no wheels folder at $2" >&2; exit 2; }
mkdir -p "$3"
out=$(realpath "$3")
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

: "${BUDGET_S:=465}"            # the whole run, in seconds (8 minutes, less a margin)
: "${LIMIT_INSTALL:=180}"       # seconds each step may take at most
: "${LIMIT_DEVICE:=30}"
: "${LIMIT_DECODE:=60}"
: "${LIMIT_THROUGHPUT:=150}"
: "${LIMIT_E2E:=150}"
: "${LIMIT_LAYER_SI:=120}"
: "${LIMIT_SELECTION:=90}"
: "${LIMIT_RESUME_SAVE:=45}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv=$work/venv
py=$venv/bin/python
npz=$work/cifar10.npz
status=$work/status.txt
deadline=$((SECONDS + BUDGET_S))
export PYTHONUNBUFFERED=1      # a step cut short still leaves what it printed

# run_step NAME LIMIT COMMAND...: run COMMAND under timeout, its output into OUT_DIR/NAME.txt
# (and on screen), its status and seconds into the status list. Never fails itself.
run_step() {
  local name=$1 limit=$2
  shift 2
  local left=$((deadline - SECONDS))
  if ((limit > left)); then
    limit=$left
  fi
  if ((limit < 10)); then
    printf '%-17s %-20s %4s   (%d s of the %d s budget left)\n' "$name" "skipped" "-" \
      "$left" "$BUDGET_S" >>"$status"
    return 0
  fi
  echo "=== $name (at most $limit s)"
  local t0=$SECONDS rc=0 what
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$out/$name.txt" || rc=$?
  case $rc in
    0) what=ok ;;
    124 | 137) what="TIMED OUT" ;;
    *) what="FAILED (exit $rc)" ;;
  esac
  printf '%-17s %-20s %4d s (limit %d s)\n' "$name" "$what" $((SECONDS - t0)) "$limit" >>"$status"
}

# The environment sees python3's own packages through a .pth file rather than
# --system-site-packages, which would miss them when python3 is itself a virtual environment.
run_step install "$LIMIT_INSTALL" bash -c '
  set -euo pipefail
  venv=$1 wheels=$2
  python3 -m venv "$venv"
  # the setuptools that Pythons before 3.12 put in every new environment is too old to build
  # the project; without it, the one of python3 or of the wheels folder is used
  "$venv/bin/python" -m pip uninstall --yes --quiet setuptools
  base=$(python3 -c "import site; print(site.getsitepackages())")
  purelib=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_path(\"purelib\"))")
  echo "import site; list(map(site.addsitedir, $base))" >"$purelib/base_packages.pth"
  pip=("$venv/bin/python" -m pip install --no-index --find-links "$wheels"
       --disable-pip-version-check)
  "${pip[@]}" "setuptools>=70.1"
  "${pip[@]}" --no-build-isolation -e . scikit-learn
  "$venv/bin/python" -m pip list --disable-pip-version-check
' _ "$venv" "$wheels"

run_step device "$LIMIT_DEVICE" bash -c '
  nvidia-smi || echo "nvidia-smi: not available"
  "$1" - <<"PY"
import os, platform, sklearn, torch
print("python", platform.python_version(), "torch", torch.__version__, "CUDA", torch.version.cuda,
      "sklearn", sklearn.__version__, "CPUs", os.cpu_count())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, "capability", p.major, p.minor, "memory GiB",
          round(p.total_memory / 2**30, 1), "multiprocessors", p.multi_processor_count)
else:
    print("device: no CUDA device visible to torch; the figures of this run are not GPU figures")
PY
' _ "$py"

run_step decode "$LIMIT_DECODE" "$py" -c '
import sys
from sicompress.data import prepare_data
prepare_data("folder", sys.argv[1], sys.argv[2])' "$archive" "$npz"

run_step train_throughput "$LIMIT_THROUGHPUT" "$py" benchmarks/train_throughput.py \
  --data "$npz" --width 1 --rounds 2 --compile --out "$out/train_throughput.json"

run_step e2e "$LIMIT_E2E" "$py" benchmarks/e2e_check.py \
  --data "$npz" --width 1 --epochs 30 --lr 0.05 --step 15 --out "$out/e2e.json"

run_step layer_si "$LIMIT_LAYER_SI" "$py" benchmarks/layer_si.py \
  --data "$npz" --n 5000 --width 1 --out "$out/layer_si.csv"

run_step selection "$LIMIT_SELECTION" "$py" benchmarks/selection.py \
  --n 5000 --channels 512 --hw 2 --no-naive

run_step resume_save "$LIMIT_RESUME_SAVE" "$py" benchmarks/resume_save.py \
  --width 1 --rounds 2 --epochs 4 --epoch-seconds 1.5

# show NAME REGEX: the lines of OUT_DIR/NAME.txt that match, under a heading, if it exists
show() {
  if [ -f "$out/$1.txt" ]; then
    echo
    echo "--- $1"
    grep -E "$2" "$out/$1.txt" || true
  fi
}

# summary.txt: the status list, then the lines of each step's output that hold its figures.
{
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  echo "gpu_check: commit $commit, $(date -u '+%Y-%m-%d %H:%M UTC'), $SECONDS s in all"
  echo
  cat "$status"
  show device '^(python|device|.*Driver Version)'
  show decode '^wrote'
  show train_throughput '^(one epoch|side|engine  |engine\+compile|baseline|ratio|\(engine)'
  show e2e '^(VGG16|best epoch|fit )'
  show layer_si '^(N=|SI per layer|layer|input|conv|pool|total|table, whole|every SI)'
  show selection '^(N=|fast|naive|ratio)'
  show resume_save '^(NVIDIA|CPU|mean|save overhead)'
} >"$out/summary.txt"
echo
cat "$out/summary.txt"
