"""Small trainings on a CPU: one at a time with every thread, or side by side with one thread each.

    python benchmarks/parallel_trainings.py --width 0.0625 --limit 10000 --jobs 2 --rounds 2
    python benchmarks/parallel_trainings.py --width 0.125 --limit 10000 --jobs 2 --rounds 2

The benchmark's fine-tunes are many trainings of small networks (VGG16 at width 0.125 pruned to
about 30,000 parameters). Snakemake may run them one at a time, each with all the cores
(`--resources gpu=1`, the default profile), or side by side with one core each
(`--resources gpu=2 --max-threads 1` on 2 cores). Which is faster depends on how well one
small training uses a second thread; this measures it.

Each training is a fresh process (as a Snakemake job is: start-up and torch import included)
that trains VGG16 at --width (seed 0, so the same weights) for one epoch of --limit random
uint8 images (the content does not change the speed) with `sicompress.engine.fit`, batch 128,
augmentation on, and one validation batch.

- one at a time: --jobs trainings in a row, each with --jobs threads;
- side by side: --jobs trainings started at once, each with one thread.

Rounds alternate (one at a time, side by side, ...). Throughput = images of all trainings /
wall seconds of the side; the best round of each side is reported, every round is listed, and
the ratio side by side / one at a time (above 1: side by side is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def worker(a) -> None:
    """One training in this process; prints {"fit_s": ..., "images": ...} as its last line."""
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    from sicompress.engine import TrainSettings, fit, to_device_images
    from sicompress.model import build_model
    from sicompress.networks import vgg_arch

    rng = np.random.default_rng(a.seed)
    x = rng.integers(0, 256, size=(a.limit, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=a.limit)
    device = torch.device("cpu")
    train = (to_device_images(x, device), torch.as_tensor(y, dtype=torch.long))
    val = (to_device_images(x[:128], device), torch.as_tensor(y[:128], dtype=torch.long))
    torch.manual_seed(a.seed)
    model = build_model(vgg_arch(a.width, num_classes=10, mean=[0.5] * 3, std=[0.25] * 3))
    settings = TrainSettings(epochs=1, lr=0.01, step_size=1, momentum=0.9, weight_decay=5e-4,
                             batch_size=128, augment=True, pad=4, seed=a.seed)
    t0 = time.perf_counter()
    fit(model, train, val, settings, log=lambda line: None)
    print(json.dumps({"fit_s": time.perf_counter() - t0, "images": a.limit,
                      "threads": torch.get_num_threads()}))


def start(a, threads: int, seed: int) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--worker", "--threads", str(threads), "--width",
           str(a.width), "--limit", str(a.limit), "--seed", str(seed)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"a training exited with {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def one_at_a_time(a) -> tuple[float, list]:
    t0 = time.perf_counter()
    runs = [finish(start(a, a.jobs, seed)) for seed in range(a.jobs)]
    return time.perf_counter() - t0, runs


def side_by_side(a) -> tuple[float, list]:
    t0 = time.perf_counter()
    procs = [start(a, 1, seed) for seed in range(a.jobs)]
    runs = [finish(p) for p in procs]
    return time.perf_counter() - t0, runs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=float, default=0.0625, help="VGG16 channel multiplier")
    p.add_argument("--limit", type=int, default=10000, help="images of each training's epoch")
    p.add_argument("--jobs", type=int, default=2, help="trainings per side (= the cores used)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of each side")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        return worker(a)

    print(f"VGG16 width {a.width}, {a.jobs} trainings of {a.limit} images per side, "
          f"{os.cpu_count()} CPUs")
    rows = []
    for r in range(1, a.rounds + 1):
        for side, run in (("one at a time", one_at_a_time), ("side by side", side_by_side)):
            wall, runs = run(a)
            ips = a.jobs * a.limit / wall
            fit_s = ", ".join(f"{x['fit_s']:.1f}" for x in runs)
            rows.append((side, wall, ips))
            print(f"round {r}  {side:13s}  wall {wall:6.1f} s  {ips:7.0f} images/s  "
                  f"(fit seconds of each: {fit_s}; threads {runs[0]['threads']})")
    best = {side: max(ips for s, _, ips in rows if s == side)
            for side in ("one at a time", "side by side")}
    print(f"\nbest: one at a time {best['one at a time']:.0f} images/s, side by side "
          f"{best['side by side']:.0f} images/s: ratio side by side / one at a time "
          f"{best['side by side'] / best['one at a time']:.2f}x")


if __name__ == "__main__":
    main()
