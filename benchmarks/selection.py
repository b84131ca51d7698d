"""Time exact forward selection by SI: the naive reference against the fast path.

    python benchmarks/selection.py --n 1500 --channels 96 --hw 2
    python benchmarks/selection.py --n 5000 --channels 512 --hw 2 --steps 10 --no-naive

Activations are ReLU-like: relu of a Gaussian whose mean depends on the class (10 classes)
and on the channel, so some channels separate the classes and many values are exactly 0.
Prints seconds of each, their ratio and whether they chose the same features.
"""

from __future__ import annotations

import argparse
import time

import torch

from sicompress.selection import forward_select, forward_select_naive

CLASSES = 10


def relu_activations(n: int, channels: int, hw: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """-> features (N, C, hw, hw) float32, labels (N,) int64."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % CLASSES
    strength = torch.rand(channels, generator=g) ** 3                     # few strong channels
    means = torch.randn(CLASSES, channels, 1, 1, generator=g) * strength[:, None, None]
    x = means[y] + torch.randn(n, channels, hw, hw, generator=g) - 0.5   # (N, C, hw, hw)
    return torch.relu(x), y


def timed(fn, repeat: int, device):
    best, out = float("inf"), None
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1500, help="samples")
    p.add_argument("--channels", type=int, default=96, help="channels F (the candidates)")
    p.add_argument("--hw", type=int, default=2, help="spatial side: 2 means 2x2 values per channel")
    p.add_argument("--steps", type=int, default=None, help="features to select (default: rank all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when present)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each; the fastest is reported")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-naive", action="store_true", help="time the fast path only")
    p.add_argument("--naive-memory", type=float, default=8.0,
                   help="GiB the naive reference may use to cache per-channel distances")
    a = p.parse_args(argv)

    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    x, y = relu_activations(a.n, a.channels, a.hw, a.seed)
    print(f"N={a.n} channels={a.channels} hw={a.hw}x{a.hw} steps={a.steps or a.channels} "
          f"device={device} threads={torch.get_num_threads()} zeros={float((x == 0).float().mean()):.2f}")

    t_fast, fast = timed(lambda: forward_select(x, y, max_features=a.steps, device=device), a.repeat, device)
    print(f"fast   {t_fast:9.2f} s   SI after 1/5/last: {fast.si[0]:.4f} "
          f"{fast.si[min(4, len(fast.si) - 1)]:.4f} {fast.si[-1]:.4f}")
    if a.no_naive:
        return
    t_naive, naive = timed(lambda: forward_select_naive(
        x, y, max_features=a.steps, device=device, memory_budget=a.naive_memory * 2**30), a.repeat, device)
    print(f"naive  {t_naive:9.2f} s")
    print(f"ratio  {t_naive / t_fast:9.1f} x   same order: {naive.order == fast.order}   "
          f"same SI: {naive.si == fast.si}")


if __name__ == "__main__":
    main()
