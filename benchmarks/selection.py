"""Time exact forward selection by SI: the fast path against naive references.

    python benchmarks/selection.py --n 1500 --channels 96 --hw 2
    python benchmarks/selection.py --data informative --n 1500 --channels 96 --hw 2
    python benchmarks/selection.py --data real --n 1500 --layer pool4 \\
        --model results/e2e/model.pt --data-npz results/data/cifar10.npz \\
        --split-npz results/split/split.npz
    python benchmarks/selection.py --n 5000 --channels 512 --hw 2 --steps 10 --no-naive
    python benchmarks/selection.py --bound-filter 300 1000 8192

Inputs (--data), 10 classes:
  relu         relu of a Gaussian whose mean depends on the class and the channel, with
               channel strengths spread out, so some channels separate the classes and many
               values are exactly 0.
  informative  a few channels (INFORMATIVE) with class-dependent means among pure-noise
               channels, ReLU-like: the greedy order has a clear head and a long noisy tail.
  real         a trained model's activations at --layer for the si_train images, the first
               --n // 10 of each class (si_train order), all channels.
Naive references:
  cdist        the obvious one: per step and candidate, the N x N distances of (selected +
               candidate) by one torch.cdist call (float64, differences taken directly),
               self excluded, nearest other by argmin (lowest index on ties).
  naive        `forward_select_naive` (the test suite's reference: every candidate's N x N
               distances summed from scratch, per feature and value; slow: small inputs), with
               --old-naive.
Each is timed with the same torch threads as the fast path; with --repeat the methods
alternate round by round and each one's fastest run is reported. Prints seconds (with the
1-minute load average), every ratio naive/fast and whether the naive chose the same features
with the same SI curve (if not: the first step where they differ and the SI of each there).
Time on an otherwise idle machine: the fast path runs many small parallel ops, and while other
processes take the cores each op waits for a descheduled thread (seen on 2 cores: 5 s idle,
80 s at load 4-5), far more than the few large cdist calls do.

--bound-filter C ...: times, alone, the filter by which a step of `forward_select` keeps the
candidates that can still win, with the most hits known so far taken once per candidate (as
it was: O(C^2) per step) and once per step (as it is), on C candidates that are all still
open (the worst case), and prints the ratio. A ranking runs it once per step, C steps.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from sicompress.selection import Selection, forward_select, forward_select_naive

CLASSES = 10
INFORMATIVE = 8          # channels carrying the class in --data informative
INFORMATIVE_SCALE = 1.5  # spread of their class means (noise has std 1): separable, not trivially
RELU_SHIFT = 0.5         # subtracted before the ReLU so that many values are exactly 0


def relu_activations(n: int, channels: int, hw: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """-> features (N, C, hw, hw) float32, labels (N,) int64."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % CLASSES
    strength = torch.rand(channels, generator=g) ** 3                     # few strong channels
    means = torch.randn(CLASSES, channels, 1, 1, generator=g) * strength[:, None, None]
    x = means[y] + torch.randn(n, channels, hw, hw, generator=g) - RELU_SHIFT  # (N, C, hw, hw)
    return torch.relu(x), y


def informative_activations(n: int, channels: int, hw: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """INFORMATIVE class channels at random positions, the rest pure noise: (N, C, hw, hw), (N,)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % CLASSES
    means = torch.zeros(CLASSES, channels, 1, 1)
    useful = torch.randperm(channels, generator=g)[:min(INFORMATIVE, channels)]  # not just the first
    means[:, useful] = torch.randn(CLASSES, len(useful), 1, 1, generator=g) * INFORMATIVE_SCALE
    x = means[y] + torch.randn(n, channels, hw, hw, generator=g) - RELU_SHIFT
    return torch.relu(x), y


def real_activations(model, data_npz, split_npz, layer: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's `layer` output for the first n // CLASSES si_train images of each class."""
    from sicompress.activations import subset_activations  # loads the model stack: only here

    x, y = subset_activations(model, data_npz, split_npz, layer, device="cpu")
    y = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    per = n // CLASSES
    keep = torch.cat([(y == k).nonzero().squeeze(1)[:per] for k in y.unique()]).sort().values
    if len(keep) != per * len(y.unique()):
        raise SystemExit(f"si_train has fewer than {per} images of some class")
    return x[keep], y[keep]


def cdist_select(x: torch.Tensor, y: torch.Tensor, steps: int, device) -> Selection:
    """The obvious naive forward selection of channels, one torch.cdist per candidate."""
    t0 = time.perf_counter()
    n, c = x.shape[:2]
    x = x.reshape(n, c, -1).to(device, torch.float64)  # float64 like ours, so ties behave alike
    y = y.to(device)
    order, si, remaining = [], [], list(range(c))
    while remaining and len(order) < steps:
        counts = []
        for cand in remaining:
            z = x[:, order + [cand]].reshape(n, -1)  # (N, (selected + 1) * H * W)
            # Differences taken directly (exact), not |a|^2 + |b|^2 - 2ab.
            d = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")  # (N, N)
            d.fill_diagonal_(float("inf"))  # self excluded
            counts.append(int((y[d.argmin(dim=1)] == y).sum()))  # argmin: lowest index on ties
        k = max(range(len(remaining)), key=lambda i: (counts[i], -i))  # ties: lowest candidate
        order.append(remaining.pop(k))
        si.append(counts[k] / n)
    return Selection(order, si, "channel", n, c, seconds=time.perf_counter() - t0)


def bound_filter_seconds(c: int, repeat: int = 3) -> tuple[float, float]:
    """Fastest seconds of one step's candidate filter on C open candidates: (the most hits
    known taken per candidate, taken once)."""
    rng = np.random.default_rng(0)
    low = rng.integers(0, 1000, c).tolist()            # hits known per candidate
    high = [v + int(k) for v, k in zip(low, rng.integers(1, 100, c))]  # if all open ones hit

    def per_candidate():
        return [i for i in range(c) if low[i] < high[i] and high[i] >= max(low)]

    def once():
        floor = max(low)
        return [i for i in range(c) if low[i] < high[i] and high[i] >= floor]

    best = []
    for fn in (per_candidate, once):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        best.append(min(times))
    assert per_candidate() == once()
    return best[0], best[1]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_alternating(runs: dict, repeat: int, device) -> dict:
    """name -> (best seconds, its result, load after it).

    The methods alternate, so a change of load on a shared machine hits all of them alike.
    """
    best = {name: (float("inf"), None, None) for name in runs}
    for r in range(repeat):
        for name, fn in runs.items():
            sync(device)
            t0 = time.perf_counter()
            out = fn()
            sync(device)
            seconds = time.perf_counter() - t0
            print(f"# round {r + 1} {name}: {seconds:.2f} s   load {os.getloadavg()[0]:.2f}", flush=True)
            if seconds < best[name][0]:
                best[name] = (seconds, out, os.getloadavg()[0])
    return best


def compare(name: str, t_ref: float, ref: Selection, t_fast: float, fast: Selection):
    same_order, same_si = ref.order == fast.order, ref.si == fast.si
    print(f"ratio {name:<5} {t_ref / t_fast:9.1f} x   same order: {same_order}   same SI: {same_si}")
    if not same_order:  # say where, do not hide it: cdist may round a near tie differently
        i = next(i for i, (a, b) in enumerate(zip(ref.order, fast.order)) if a != b)
        print(f"differ {name} at step {i + 1}: fast chose {fast.order[i]} (SI {fast.si[i]:.4f}), "
              f"{name} chose {ref.order[i]} (SI {ref.si[i]:.4f})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=("relu", "informative", "real"), default="relu", help="input")
    p.add_argument("--n", type=int, default=1500, help="samples (real: n // 10 per class)")
    p.add_argument("--channels", type=int, default=96, help="synthetic: channels (the candidates)")
    p.add_argument("--hw", type=int, default=2, help="synthetic: spatial side (2: 2x2 values per channel)")
    p.add_argument("--model", help="real: a saved model, e.g. results/e2e/model.pt")
    p.add_argument("--data-npz", help="real: results/data/cifar10.npz")
    p.add_argument("--split-npz", help="real: results/split/split.npz")
    p.add_argument("--layer", default="pool4", help="real: the layer whose output is ranked")
    p.add_argument("--steps", type=int, default=None, help="features to select (default: rank all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when present)")
    p.add_argument("--repeat", type=int, default=1, help="rounds of each; the fastest is reported")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-naive", action="store_true", help="time the fast path only")
    p.add_argument("--old-naive", action="store_true",
                   help="also time forward_select_naive (slow: N x N x values per candidate and step)")
    p.add_argument("--bound-filter", type=int, nargs="+", metavar="C",
                   help="only time a step's candidate filter at these candidate counts")
    a = p.parse_args(argv)

    if a.bound_filter:
        for c in a.bound_filter:
            before, now = bound_filter_seconds(c)
            print(f"bound filter C={c:>6}: max per candidate {before:10.4f} s, once per step "
                  f"{now:8.5f} s, ratio {before / now:8.1f} x; a ranking of all C: "
                  f"~{c * before / 3 / 60:.1f} min in it before (steps on C, C - 1, ... "
                  f"candidates: C/3 of this step)")
        return

    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if a.data == "real":
        if not (a.model and a.data_npz and a.split_npz):
            p.error("--data real needs --model, --data-npz and --split-npz")
        x, y = real_activations(a.model, a.data_npz, a.split_npz, a.layer, a.n)
    else:
        make = relu_activations if a.data == "relu" else informative_activations
        x, y = make(a.n, a.channels, a.hw, a.seed)
    n, c, h, w = x.shape
    steps = min(a.steps or c, c)
    print(f"N={n} channels={c} hw={h}x{w} steps={steps} data={a.data}"
          f"{' layer=' + a.layer if a.data == 'real' else ''} device={device} "
          f"threads={torch.get_num_threads()} zeros={float((x == 0).float().mean()):.2f} "
          f"load={os.getloadavg()[0]:.2f}", flush=True)

    runs = {"fast": lambda: forward_select(x, y, max_features=steps, device=device)}
    if not a.no_naive:
        runs["cdist"] = lambda: cdist_select(x, y, steps, device)
        if a.old_naive:
            runs["naive"] = lambda: forward_select_naive(x, y, max_features=steps, device=device)
    res = time_alternating(runs, a.repeat, device)
    t_fast, fast, load = res["fast"]
    print(f"fast   {t_fast:9.2f} s   load {load:.2f}   SI after 1/5/last: {fast.si[0]:.4f} "
          f"{fast.si[min(4, len(fast.si) - 1)]:.4f} {fast.si[-1]:.4f}")
    for name in ("cdist", "naive"):
        if name in res:
            print(f"{name:<6} {res[name][0]:9.2f} s   load {res[name][2]:.2f}")
    for name in ("cdist", "naive"):
        if name in res:
            compare(name, *res[name][:2], t_fast, fast)


if __name__ == "__main__":
    main()
