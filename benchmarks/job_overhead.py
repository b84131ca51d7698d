"""The fixed cost of one training job, before its first epoch: starting Python, importing
what a training script imports, and reading the study's data file onto the device.

    python benchmarks/job_overhead.py WORKDIR [--rounds 5]

WORKDIR is a run with results/data/cifar10.npz and results/split/ (any config). Each round
starts a fresh Python process (as Snakemake starts one per job) that times, in order: the
imports of a training script (`sicompress.compression`, `sicompress.trainings`: torch,
numpy, pandas, matplotlib), and `splits.load_study_data` (the npz read, the split's
train / val / test subsets taken and moved to the device). The process's whole wall time is
measured from outside. Prints every round and the median of each part; a baseline for the
import is `python -c pass` timed the same way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import sicompress.compression, sicompress.trainings
t1 = time.perf_counter()
from sicompress.splits import load_study_data
import torch
r = sys.argv[1]
data = load_study_data(f"{r}/data/cifar10.npz", f"{r}/split/split.npz",
                       f"{r}/split/summary.json", torch.device("cpu"))
t2 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "data": t2 - t1, "images": len(data.train[0])
                  + len(data.val[0]) + len(data.test[0])}))
"""


def timed(args: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - t, out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdir", type=Path)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args(argv)
    results = a.workdir / "results"
    rows = []
    for i in range(a.rounds):
        bare, _ = timed([sys.executable, "-c", "pass"])
        whole, out = timed([sys.executable, "-c", CHILD, str(results)])
        rec = json.loads(out)
        rec.update(bare_python=bare, whole=whole)
        rows.append(rec)
        print(f"round {i + 1}: python alone {bare:.2f} s; imports {rec['imports']:.2f} s, data "
              f"{rec['data']:.2f} s ({rec['images']} images), whole process {whole:.2f} s")
    med = {k: statistics.median(r[k] for r in rows) for k in ("bare_python", "imports", "data",
                                                              "whole")}
    print(f"median: python alone {med['bare_python']:.2f} s, imports {med['imports']:.2f} s, "
          f"data {med['data']:.2f} s, whole process {med['whole']:.2f} s")


if __name__ == "__main__":
    main()
