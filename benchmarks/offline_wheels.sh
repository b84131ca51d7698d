#!/usr/bin/env bash
# Wheels of the `workflow` extra (Snakemake, and pygments for its HTML report) and everything
# they need, for a machine without network (a GPU node, a cluster's compute node) whose Python
# may differ from this one's:
#
#   bash benchmarks/offline_wheels.sh PYTHON_VERSION DIR      # e.g. 3.12 wheels/
#
# Downloads the binary wheels for CPython PYTHON_VERSION on x86-64 Linux (manylinux) into DIR;
# the one dependency published only as source (connection_pool) is built here, pure Python.
# The SLURM executor plugin is left out: only the machine that submits the jobs needs it, and
# it would bring numpy and pandas, which would shadow the other machine's own.
# On the other machine: pip install --no-index --no-deps --target SITE DIR/*.whl, then put
# SITE on PYTHONPATH and SITE/bin on PATH (benchmarks/gpu_check.sh does this). About 30 MB.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: bash benchmarks/offline_wheels.sh PYTHON_VERSION DIR" >&2
  exit 2
fi
version=$1
dir=$(realpath -m "$2")
cd "$(dirname "$0")/.."
mapfile -t specs < <(python3 - <<'PY'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["workflow"]
for d in deps:
    if not re.match(r"snakemake-executor-plugin-slurm\b", d):
        print(d)
PY
)
((${#specs[@]})) || { echo "no workflow extra read from pyproject.toml" >&2; exit 1; }
mkdir -p "$dir"
python3 -m pip wheel -q --no-deps -w "$dir" "connection_pool"
python3 -m pip download -q --only-binary=:all: --python-version "$version" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --find-links "$dir" -d "$dir" "${specs[@]}"
echo "$(ls "$dir"/*.whl | wc -l) wheels for CPython $version in $dir ($(du -sh "$dir" | cut -f1)):" \
  "${specs[*]} and what they need"
