#!/usr/bin/env bash
# Everything a GPU changes, checked on a fresh GPU machine in one call of at most 8 minutes,
# offline (so that, with the machine's start, it fits a 15-minute lease with time to run one
# step again; the sizing is in docs/benchmarks.md, "Sizing the GPU check"):
#
#   bash benchmarks/gpu_check.sh ARCHIVE WHEELS_DIR OUT_DIR
#
# ARCHIVE     the CIFAR-10 JPEG archive (.tar.gz of train/<class>/*.jpg, test/<class>/*.jpg).
# WHEELS_DIR  wheels of what the machine's python3 lacks (Snakemake, pygments and their
#             dependencies, for that python3: `bash benchmarks/offline_wheels.sh 3.12 WHEELS_DIR`),
#             installed with pip --no-index --no-deps into a temporary folder; nothing is
#             downloaded. May be empty when python3 has them all. The project itself is not
#             installed: src/ is put on PYTHONPATH (torch, numpy, pandas, matplotlib, pillow,
#             pyyaml, jinja2, scikit-learn and pytest must be there already; pytest-xdist is
#             used when it is there).
# OUT_DIR     receives 10 files: setup.txt, tests.txt, study.txt, selection.txt, benchmark.txt,
#             resnet.txt, throughput.txt (each step's whole output), study.tar.gz (with the
#             benchmark's results when its step ran) and resnet.tar.gz (each
#             study's tables, JSON, figures, report and logs; no models, data or feature
#             caches) and summary.txt (each step's status and seconds, then its main figures).
#
# Steps, in this order, most important first (expected seconds on one H200, estimated):
#   setup       (15)  the wheels; nvidia-smi and what torch sees
#   tests       (60)  the test suite in the CUDA test mode (SICOMPRESS_TEST_DEVICE=cuda), 8
#                     processes, one test file per process; without the tests that run the
#                     smoke workflow (marker `workflow`: its 69 jobs, one GPU job at a time,
#                     would take about 5 minutes here; the study step runs every rule on CUDA)
#   study       (220) config/gpu-quick.yaml: the whole study at width 1 on the real data
#                     through the report (SICOMPRESS_DEVICE=cuda; 44 jobs, up to STUDY_GPU_JOBS
#                     of them sharing the GPU), then benchmarks/study_summary.py
#   selection   (45)  forward selection, N = 5,000, 512 synthetic channels of 2x2, fast path
#   benchmark   (120) the criteria benchmark's rules on the study step's e2e model (its folder;
#                     config/gpu-quick-benchmark.yaml after the study's configs): SI's ranking
#                     of every group at width 1, 13 choices, 13 one-epoch fine-tunes
#   resnet      (120) config/gpu-quick-resnet.yaml: the whole study on ResNet-20 at width 1
#                     (46 jobs, 8 e2e epochs: every rule on CUDA for a residual network);
#                     with it the steps are expected to take about 8 minutes, so throughput,
#                     the last, may find too little time left and be skipped
#   throughput  (45)  one epoch at width 1: the engine against the common DataLoader way
# Each step runs under `timeout`, within its own limit (LIMIT_* below) and never past
# BUDGET_S seconds after the start; a step that fails or runs out of time is recorded in
# summary.txt and the next one runs. To run one step again, set the other steps' limits to 0
# (not setup's: it installs the wheels).
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: bash benchmarks/gpu_check.sh ARCHIVE WHEELS_DIR OUT_DIR" >&2
  exit 2
fi
archive=$(realpath "$1")
wheels=$(realpath "$2")
[ -f "$archive" ] || { echo "no archive at $1" >&2; exit 2; }
[ -d "$wheels" ] || { echo "no wheels folder at $2" >&2; exit 2; }
mkdir -p "$3"
out=$(realpath "$3")
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

: "${BUDGET_S:=480}"            # the whole run, in seconds (8 minutes)
: "${LIMIT_SETUP:=45}"          # seconds each step may take at most (a limit under 10: skipped)
: "${LIMIT_TESTS:=120}"
: "${LIMIT_STUDY:=330}"
: "${LIMIT_SELECTION:=60}"
: "${LIMIT_BENCHMARK:=150}"
: "${LIMIT_RESNET:=150}"
: "${LIMIT_THROUGHPUT:=60}"
: "${TEST_WORKERS:=8}"
: "${CHECK_DEVICE:=cuda}"       # cpu: try this script's steps on a machine without a GPU
: "${STUDY_CONFIG:=config/gpu-quick.yaml}"  # config files, relative to the repository or
                                # absolute, e.g. tests/smoke.yaml for a quick try
: "${RESNET_CONFIG:=config/gpu-quick-resnet.yaml}"  # the resnet step's, likewise
: "${BENCHMARK_CONFIG:=config/gpu-quick-benchmark.yaml}"  # the benchmark step's, after the study's
: "${STUDY_GPU_JOBS:=4}"        # GPU jobs at once (--resources gpu=N): they share the one GPU
: "${TEST_PATHS:=tests}"        # the tests to run (pytest arguments)
: "${TEST_MARKERS:=not workflow}"  # pytest -m: which tests (empty: all)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=$work/status.txt
deadline=$((SECONDS + BUDGET_S))
export PYTHONUNBUFFERED=1        # a step cut short still leaves what it printed
export PYTHONPATH="$repo/src:$work/site${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$work/site/bin:$PATH"
export CIFAR10_JPEG="$archive"
export MPLBACKEND=Agg

# run_step NAME LIMIT COMMAND...: COMMAND under timeout, its output into OUT_DIR/NAME.txt (and
# on screen), its status and seconds into the status list. Never fails itself.
run_step() {
  local name=$1 limit=$2
  shift 2
  local left=$((deadline - SECONDS))
  if ((limit > left)); then
    limit=$left
  fi
  if ((limit < 10)); then
    printf '%-11s %-20s %4s   (%d s of the %d s budget left)\n' "$name" "skipped" "-" \
      "$left" "$BUDGET_S" >>"$status"
    return 0
  fi
  echo "=== $name (at most $limit s)"
  local t0=$SECONDS rc=0 what
  timeout --kill-after=5 "$limit" env STEP_LIMIT="$limit" "$@" 2>&1 | tee "$out/$name.txt" || rc=$?
  case $rc in
    0) what=ok ;;
    124 | 137) what="TIMED OUT" ;;
    *) what="FAILED (exit $rc)" ;;
  esac
  printf '%-11s %-20s %4d s (limit %d s)\n' "$name" "$what" $((SECONDS - t0)) "$limit" >>"$status"
}

run_step setup "$LIMIT_SETUP" bash -c '
  set -euo pipefail
  site=$1 wheels=$2
  shopt -s nullglob
  whl=("$wheels"/*.whl)
  if ((${#whl[@]})); then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --disable-pip-version-check --target "$site" "${whl[@]}"
  fi
  echo "snakemake $(snakemake --version)"
  nvidia-smi || echo "nvidia-smi: not available"
  python3 - <<"PY"
import os, platform, sklearn, torch, sicompress
print("python", platform.python_version(), "torch", torch.__version__, "CUDA", torch.version.cuda,
      "sklearn", sklearn.__version__, "CPUs", os.cpu_count(), "sicompress", sicompress.__file__)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, "capability", p.major, p.minor, "memory GiB",
          round(p.total_memory / 2**30, 1), "multiprocessors", p.multi_processor_count)
else:
    print("device: no CUDA device visible to torch; the figures of this run are not GPU figures")
PY
' _ "$work/site" "$wheels"

xdist=()
if python3 -c "import xdist" 2>/dev/null; then
  xdist=(-n "$TEST_WORKERS" --dist loadfile)
fi
markers=()
if [ -n "$TEST_MARKERS" ]; then
  markers=(-m "$TEST_MARKERS")
fi
run_step tests "$LIMIT_TESTS" env SICOMPRESS_TEST_DEVICE="$CHECK_DEVICE" \
  python3 -m pytest -q -p no:cacheprovider -rs "${xdist[@]}" "${markers[@]}" --durations=15 \
  $TEST_PATHS

# study_step NAME LIMIT FOLDER TARGET CONFIGS...: the workflow's TARGET (all: the study) on
# CONFIGS in the folder FOLDER under the work folder, summed up, its small files into
# OUT_DIR/FOLDER.tar.gz
study_step() {
  local name=$1 limit=$2 folder=$3 target=$4
  shift 4
  run_step "$name" "$limit" bash -c '
  set -uo pipefail
  repo=$1 study=$2 out=$3 device=$4 gpu_jobs=$5 target=$6
  shift 6
  configs=()
  for c in "$@"; do
    case $c in /*) configs+=("$c") ;; *) configs+=("$repo/$c") ;; esac
  done
  mkdir -p "$study"
  t0=$SECONDS
  # snakemake stops 25 s before the step does, so that what it made is still summed up
  SICOMPRESS_DEVICE=$device timeout --kill-after=5 $((STEP_LIMIT - 25)) snakemake "$target" \
    --directory "$study" --configfile "${configs[@]}" --cores all --resources gpu="$gpu_jobs"
  rc=$?
  echo "$target: snakemake exit $rc after $((SECONDS - t0)) s"
  if [ "$target" = benchmark ]; then
    grep -h "ranking done\|ranked, SI" "$study"/logs/benchmark/rank.log 2>/dev/null || true
  else
    python3 "$repo/benchmarks/study_summary.py" "$study" || true
  fi
  # everything but the models, the data and the feature caches, for reading at home
  (cd "$study" && find results logs -type f ! -name "*.pt" ! -name "*.npz" ! -name "*.npy" \
    -print0 2>/dev/null | tar --null -czf "$out/$(basename "$study").tar.gz" -T -) || true
  exit $rc
' _ "$repo" "$work/$folder" "$out" "$CHECK_DEVICE" "$STUDY_GPU_JOBS" "$target" "$@"
}

study_step study "$LIMIT_STUDY" study all $STUDY_CONFIG

run_step selection "$LIMIT_SELECTION" python3 benchmarks/selection.py \
  --n 5000 --channels 512 --hw 2 --no-naive --device "$CHECK_DEVICE"

# the criteria benchmark in the study step's folder (on its e2e model); its small files join
# study.tar.gz
study_step benchmark "$LIMIT_BENCHMARK" study benchmark $STUDY_CONFIG $BENCHMARK_CONFIG

study_step resnet "$LIMIT_RESNET" resnet all $RESNET_CONFIG

run_step throughput "$LIMIT_THROUGHPUT" python3 benchmarks/train_throughput.py \
  --data "$archive" --width 1 --rounds 1 --workers 8 --device "$CHECK_DEVICE"

# show NAME REGEX: the lines of OUT_DIR/NAME.txt that match, under a heading, if it exists
show() {
  if [ -f "$out/$1.txt" ]; then
    echo
    echo "--- $1"
    grep -E "$2" "$out/$1.txt" || true
  fi
}

{
  echo "gpu_check: $(date -u '+%Y-%m-%d %H:%M UTC'), $SECONDS s in all"
  echo
  cat "$status"
  show setup '^(snakemake|python|device|.*Driver Version)'
  show tests '(passed|failed|error|SKIPPED)'
  show study '^(all:|  (search|e2e|head|compressed) |search:|cut:|selection|  total)'
  show selection '^(N=|fast)'
  show benchmark '^(benchmark:|\[.*\] ranking done)'
  show resnet '^(all:|  (search|e2e|head|compressed) |search:|cut:|selection|  total)'
  show throughput '^(one epoch|engine  |baseline|ratio|\(engine)'
} >"$out/summary.txt"
echo
cat "$out/summary.txt"
