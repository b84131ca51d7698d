"""What pooling the maps costs and changes in the layer-wise SI ranking, on one layer.

    python benchmarks/layerwise_pool.py WORKDIR --layer conv3_3 [--pools none 4 2 1]

WORKDIR is a finished run (results/e2e/model.pt, results/data, results/split). The layer's
output for si_train (through the unpruned layers before it) is ranked by forward selection on
SI once on the whole maps (exact, "none") and once per pool size (each channel's map
average-pooled to p x p), with the layer-wise rule choosing k (layerwise.tolerance). For each:
the ranking's seconds, k, and, measured on the whole maps (the exact SI of what is kept),
the SI of the kept channels, the SI of the exact ranking's first k, and the overlap of the
kept channels with the exact ranking's. Prints one row per pool and the time ratio to exact.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sicompress.decisions import choose_k
from sicompress.activations import layer_activations, subset_images
from sicompress.model import load_model
from sicompress.selection import forward_select
from sicompress.si import separation_index


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdir", type=Path)
    p.add_argument("--layer", default="conv3_3")
    p.add_argument("--pools", nargs="+", default=["none", "4", "2", "1"])
    p.add_argument("--tolerance", type=float, default=0.01)
    p.add_argument("--samples", type=int, default=None, help="N of si_train, every (5000 / N)-th, so all classes (default: all)")
    a = p.parse_args(argv)
    r = a.workdir / "results"
    model = load_model(r / "e2e/model.pt")
    images, labels = subset_images(r / "data/cifar10.npz", r / "split/split.npz", "si_train")
    if a.samples is not None:  # every m-th image: si_train is stored class by class
        step = max(1, len(labels) // a.samples)
        images, labels = images[::step][:a.samples], labels[::step][:a.samples]
    acts = torch.cat([layer_activations(model, images[i:i + 500], a.layer)
                      for i in range(0, len(images), 500)])
    n, c, h, w = acts.shape
    print(f"{a.layer}: {n} images x {c} channels x {h}x{w}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    def whole_si(channels):
        return separation_index(acts[:, sorted(channels)].reshape(n, -1), labels)

    rows, exact = [], None
    for pool in a.pools:
        size = None if pool == "none" else int(pool)
        x = acts if size is None or size >= h else F.adaptive_avg_pool2d(acts, size)
        t0 = time.perf_counter()
        sel = forward_select(x, labels, unit="channel")
        seconds = time.perf_counter() - t0
        k = choose_k(sel.si, a.tolerance)["k"]
        kept = sel.order[:k]
        if exact is None:
            exact = {"order": sel.order, "seconds": seconds, "k": k}
        rows.append((pool, x.shape[2], seconds, k, whole_si(kept), whole_si(exact["order"][:k]),
                     len(set(kept) & set(exact["order"][:exact["k"]])), exact["k"]))
    print(f"{'pool':>5} {'map':>4} {'seconds':>8} {'speed-up':>8} {'k':>4} {'SI kept':>8} "
          f"{'SI exact first k':>17} {'overlap with exact kept':>24}")
    for pool, m, s, k, si_kept, si_exact_k, overlap, k_exact in rows:
        print(f"{pool:>5} {m:>4} {s:8.1f} {exact['seconds'] / s:7.1f}x {k:>4} {si_kept:8.4f} "
              f"{si_exact_k:17.4f} {overlap:>14} of {k_exact}")


if __name__ == "__main__":
    main()
