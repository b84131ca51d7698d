"""SI of every layer of VGG16: the project's code against scikit-learn's NearestNeighbors.

    python benchmarks/layer_si.py --n 5000 --width 1                        # the full table
    python benchmarks/layer_si.py --n 5000 --checkpoint results/e2e/model.pt
    python benchmarks/layer_si.py --n 200 --width 0.0625                    # a quick check

Images: the first n/10 images of every class of the official CIFAR-10 training set
(class-balanced, un-augmented). Model: --checkpoint (a trained model.pt), else a randomly
initialised VGG16 at --width, normalised with the mean and std of the training set: its SI
values then describe random features, but the work, and so the timing, does not depend on
the weights.

- table: `sicompress.layer_si.layer_separation`, the project's table (input + 18 layers of the
  extractor + the classifier's hidden outputs and logits; the comparison below covers the
  input and the extractor), order r (5, the study's). A row's `seconds` is its SI work: the r nearest others of every
  sample, SI, high-order and soft SI(r), and Center SI. The whole call, forward passes
  included, is timed as well.
- ours: the neighbour search alone, `sicompress.si.nearest_neighbors(X, r)`, on the same
  activations as sklearn: the like-for-like figure.
- sklearn: `NearestNeighbors(algorithm="brute").fit(X).kneighbors(n_neighbors=r)`; without
  a query X every sample leaves itself out, i.e. leave-one-out. fit + kneighbors is timed.

X: the activations collected the same way as the table does (eval mode; normalisation, then
each layer in turn, in batches of 500; flattened, float32). ratio = sklearn s / ours s.
agree: SI, high-order and soft SI(r) of the table equal those from sklearn's neighbours (the
same counts of samples). "differ" counts the samples whose nearest other differs between
ours and sklearn (with how many differ anywhere in the r nearest): near-ties in float32 can
fall either way (sklearn computes distances in float64 chunks; ours in float32 on centred
features, ties to the lowest index). --layers limits ours, sklearn and the table printed
to some layers (the project's table always computes all of them).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from sklearn.neighbors import NearestNeighbors
from torch import nn

from sicompress.model import Network, build_model, load_model
from sicompress.networks import vgg_arch
from sicompress.layer_si import DEFAULT_BATCH_SIZE, layer_separation
from sicompress.si import DEFAULT_ORDER, nearest_neighbors
from sicompress.splits import channel_stats
from sicompress.devices import pick_device
# a script beside this one: benchmarks/ is on sys.path when a script here runs
from train_throughput import device_name, load_data, sync


def balanced_first(y: np.ndarray, n: int, classes: int) -> np.ndarray:
    """Sorted indices of the first n / classes samples of every class."""
    if n % classes:
        raise SystemExit(f"--n must be a multiple of the {classes} classes, got {n}")
    per = n // classes
    picks = [np.flatnonzero(y == c)[:per] for c in range(classes)]
    if min(len(p) for p in picks) < per:
        raise SystemExit(f"--n {n} asks for {per} images per class; the training set has fewer")
    return np.sort(np.concatenate(picks))


@torch.no_grad()
def layer_activations(model: Network, images: torch.Tensor, batch: int,
                      device: torch.device) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, activations (N, C, H, W) on `device`) of the input and of every feature layer,
    each module applied once to the previous layer's output, in batches (as layer_separation)."""
    model.eval()

    def apply(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = None
        for a in range(0, len(x), batch):
            b = module(x[a:a + batch].to(device))
            if out is None:
                out = torch.empty((len(x), *b.shape[1:]), dtype=b.dtype, device=device)
            out[a:a + batch] = b
        return out

    acts = apply(model.normalize, images)
    yield "input", acts
    for name, _, module in model.feature_layers():
        acts = apply(module, acts)
        yield name, acts


def counts(neighbors: np.ndarray, y: np.ndarray) -> tuple[int, int, int]:
    """Samples whose nearest other has their label, whose r nearest all have it, and
    neighbours with the sample's label in all: the numerators of SI, high-order and soft SI."""
    same = y[neighbors] == y[:, None]  # (N, r)
    return int(same[:, 0].sum()), int(same.all(1).sum()), int(same.sum())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("CIFAR10_JPEG"),
                   help="CIFAR-10 folder or .tar(.gz) (train/<class>/*, test/<class>/*), or the npz "
                        "of prepare_data (default: $CIFAR10_JPEG)")
    p.add_argument("--n", type=int, default=5000, help="images, class-balanced (a multiple of 10)")
    p.add_argument("--width", type=float, default=1.0, help="VGG16 channel multiplier (no --checkpoint)")
    p.add_argument("--checkpoint", default=None, help="a trained model.pt (default: random weights)")
    p.add_argument("--order", type=int, default=DEFAULT_ORDER, help="r of high-order and soft SI(r)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when present)")
    p.add_argument("--layers", default=None, help="compare these layers only, comma-separated (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--out", default=None, help="CSV of the table")
    a = p.parse_args(argv)
    if not a.data:
        p.error("--data is required when $CIFAR10_JPEG is not set")

    device = pick_device(a.device)
    ds, decode_s = load_data(a.data)
    idx = balanced_first(ds.y_train, a.n, len(ds.classes))
    x, y = ds.x_train[idx], ds.y_train[idx]  # (N, 32, 32, 3) uint8, (N,)
    if a.checkpoint:
        model = load_model(a.checkpoint, map_location=device)
        what = a.checkpoint
    else:
        mean, std = channel_stats(ds.x_train, np.arange(len(ds.y_train)))
        torch.manual_seed(a.seed)
        model = build_model(vgg_arch(a.width, num_classes=len(ds.classes), mean=mean, std=std))
        model.to(device)
        what = f"random VGG16 at width {a.width} (seed {a.seed}): SI of random features"
    names = ["input"] + [name for name, _, _ in model.feature_layers()]
    wanted = names if a.layers is None else a.layers.split(",")
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        p.error(f"unknown layer(s) {', '.join(unknown)}; the layers are {', '.join(names)}")
    print(f"N={a.n} order={a.order} model: {what}; device {device} ({device_name(device)}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"decode {decode_s:.1f} s (not timed below)")

    sync(device)
    t0 = time.perf_counter()
    table_rows = layer_separation(model, x, y, order=a.order, batch_size=DEFAULT_BATCH_SIZE)
    sync(device)
    table_call = time.perf_counter() - t0
    table_rows = table_rows.set_index("layer")
    print(f"table: layer_separation, {len(table_rows)} layers, whole call {table_call:.2f} s "
          f"(SI rows {table_rows['seconds'].sum():.2f} s)")

    rows = []
    images = torch.from_numpy(x).permute(0, 3, 1, 2)  # (N, 3, 32, 32) uint8
    for name, acts in layer_activations(model, images, DEFAULT_BATCH_SIZE, device):
        if name not in wanted:
            continue
        flat = acts.reshape(a.n, -1)  # (N, D) on the device
        sync(device)
        t0 = time.perf_counter()
        ours_nn = nearest_neighbors(flat, a.order)
        sync(device)
        ours_s = time.perf_counter() - t0
        ours_nn = ours_nn.cpu().numpy()  # (N, r)
        feats = flat.float().cpu().numpy()  # (N, D) float32
        del acts, flat
        t0 = time.perf_counter()
        theirs_nn = NearestNeighbors(n_neighbors=a.order, algorithm="brute").fit(feats).kneighbors(
            return_distance=False)  # (N, r), every sample left out
        sk_s = time.perf_counter() - t0
        del feats
        o = table_rows.loc[name]
        table_counts = (round(o["si"] * a.n), round(o["si_high"] * a.n),
                        round(o["si_soft"] * a.n * a.order))
        theirs = counts(theirs_nn, y)
        rows.append({
            "layer": name, "features": int(o["features"]), "table_s": float(o["seconds"]),
            "ours_s": ours_s, "sklearn_s": sk_s, "ratio": sk_s / ours_s,
            "si_ours": float(o["si"]), "si_sklearn": theirs[0] / a.n,
            "si_high_ours": float(o["si_high"]), "si_high_sklearn": theirs[1] / a.n,
            "si_soft_ours": float(o["si_soft"]), "si_soft_sklearn": theirs[2] / (a.n * a.order),
            "agree": table_counts == theirs,
            "nearest_differ": int((ours_nn[:, 0] != theirs_nn[:, 0]).sum()),
            "any_of_r_differ": int((ours_nn != theirs_nn).any(1).sum())})
        print(f"  {name:<8} ours {ours_s:8.2f} s  sklearn {sk_s:8.2f} s  agree {rows[-1]['agree']}")
    table = pd.DataFrame(rows)

    print(f"\nSI per layer, N={a.n}, order {a.order}, {device} ({device_name(device)}); "
          "ratio = sklearn s / ours s")
    print(f"{'layer':<9}{'features':>9}{'table s':>9}{'ours s':>9}{'sklearn s':>10}{'ratio':>7}"
          f"{'SI ours':>9}{'SI sklearn':>11}  agree  differ")
    for r in table.itertuples():
        print(f"{r.layer:<9}{r.features:>9}{r.table_s:9.2f}{r.ours_s:9.2f}{r.sklearn_s:10.2f}"
              f"{r.ratio:7.1f}{r.si_ours:9.4f}{r.si_sklearn:11.4f}  {'yes' if r.agree else 'NO':<5}"
              f"  {r.nearest_differ} ({r.any_of_r_differ})")
    totals = table[["table_s", "ours_s", "sklearn_s"]].sum()
    print(f"{'total':<9}{'':>9}{totals.table_s:9.2f}{totals.ours_s:9.2f}{totals.sklearn_s:10.2f}"
          f"{totals.sklearn_s / totals.ours_s:7.1f}")
    print(f"table, whole call (forward passes and all {len(table_rows)} layers): {table_call:.2f} s")
    print(f"every SI agrees (SI, high-order and soft SI({a.order})): {bool(table['agree'].all())} "
          f"({int(table['agree'].sum())}/{len(table)} layers); samples whose nearest other "
          f"differs: {int(table['nearest_differ'].sum())} in all layers")

    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        table.assign(n=a.n, order=a.order, device=device_name(device),
                     table_call_s=table_call).to_csv(out, index=False)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
