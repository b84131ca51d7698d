"""The Separation Index (SI) of a set of labelled samples, exact, in chunks of rows.

Definitions (Q samples x_q with labels y_q, Euclidean distance):

- SI (first order): the share of samples whose nearest other sample has the same label,
  i.e. the leave-one-out accuracy of a 1-nearest-neighbour classifier.
- High-order SI(r): the share of samples whose r nearest others all share its label.
- Soft SI(r): the mean, over samples, of the share of its r nearest others with its label.
- Center SI (CSI): the share of samples whose nearest class mean (means of the same data)
  is its own class's, i.e. the training accuracy of a nearest-centroid classifier.

Everything rests on one exact k-nearest-neighbour search, `nearest_neighbors`:

- The sample itself is excluded by its index, so an exact duplicate of it (distance 0)
  does count as a neighbour. Ties in distance go to the lowest index, so the result is
  deterministic (`torch.topk` alone does not promise that).
- Squared distances come from ||a||^2 + ||b||^2 - 2 a.b on features centred first (the mean
  subtracted in float64), which keeps float32 accurate on data far from the origin; TF32 is
  switched off for the matmul. Negative squared distances from rounding are clamped to 0.
- The forward passes that produce the activations run in float32 too (`exact_float32`: TF32
  off for cuDNN convolutions and matmuls, autocast off), so a layer's SI on a GPU is the SI
  of the same numbers as on a CPU, up to float32 rounding (`PRECISION` in every table).
- Rows are processed in chunks, so memory is O(chunk x N), never N x N x D. The default chunk
  holds about `DISTANCE_BUDGET_BYTES` (256 MiB) of distances; the tie-aware selection needs a
  few more bytes per entry on top (masks and a running count), so budget ~3x that.
- The work runs where the features are (CUDA tensors stay on the GPU), or on `device`.

`layer_si.layer_separation` applies these to every layer of a model.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

__all__ = ["DISTANCE_BUDGET_BYTES", "DEFAULT_ORDER", "PRECISION", "center_separation_index",
           "center_si_curve", "check_order", "default_chunk_size", "exact_float32",
           "exact_matmul", "label_codes", "nearest_neighbors",
           "separation_index", "separation_indices", "si_all_features", "si_curve",
           "si_from_neighbors"]

# ----------------------------------------------------------------------------------------
# Settings

DISTANCE_BUDGET_BYTES = 256 * 2**20  # one chunk of squared distances (chunk x N entries)
PREPARE_BUDGET_BYTES = 64 * 2**20    # one chunk of float64 rows while centring / scaling
CPU_BLOCK_BYTES = 2**20              # rows of an SI curve at a time on CPU: stays in cache
DEFAULT_ORDER = 5                    # r of the high-order and soft SI in the layer tables

ArrayLike = torch.Tensor | np.ndarray

PRECISION = "float32, TF32 off, no autocast"  # of the forward passes and distances behind SI


# ----------------------------------------------------------------------------------------
# Inputs


def _as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise ValueError(f"{name} must be a torch tensor or a numpy array, got {type(x).__name__}")


def _flat_features(features: ArrayLike) -> torch.Tensor:
    """(N, ...) -> (N, D) view or copy, bool turned into uint8."""
    x = _as_tensor(features, "features")
    if x.ndim == 0:
        raise ValueError("features must have one row per sample, got a scalar")
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    if x.is_complex():
        raise ValueError("features must be real numbers")
    if x.shape[0] == 0:
        raise ValueError("features have no samples")
    return x.reshape(x.shape[0], -1)  # (N, D)


def label_codes(labels: ArrayLike, n: int) -> torch.Tensor:
    """Labels (N,) -> class indices 0..C-1 in the order of the sorted distinct labels."""
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {tuple(y.shape)}")
    if len(y) != n:
        raise ValueError(f"features have {n} samples but labels have {len(y)}")
    _, codes = np.unique(y, return_inverse=True)
    return torch.from_numpy(codes.reshape(-1).astype(np.int64))  # (N,)


def _resolve_device(x: torch.Tensor, device: str | torch.device | None) -> torch.device:
    return x.device if device is None else torch.device(device)


def _row_chunks(n: int, chunk: int) -> Iterator[tuple[int, int]]:
    for a in range(0, n, chunk):
        yield a, min(n, a + chunk)


def _centred(x: torch.Tensor, dtype: torch.dtype, standardize: bool,
             device: torch.device) -> torch.Tensor:
    """Centred (and optionally standardised) copy of x (N, D) in `dtype` on `device`.

    Mean and standard deviation are taken in float64 over row chunks, so neither the input
    nor a float64 copy of it is ever materialised on the device in full. A constant feature
    (max == min) keeps scale 1, so it becomes 0 instead of NaN.
    """
    n, d = x.shape
    chunk = max(1, PREPARE_BUDGET_BYTES // (8 * max(d, 1)))
    total = torch.zeros(d, dtype=torch.float64, device=device)
    lo = torch.full((d,), float("inf"), dtype=torch.float64, device=device)
    hi = torch.full((d,), float("-inf"), dtype=torch.float64, device=device)
    for a, b in _row_chunks(n, chunk):
        xc = x[a:b].to(device=device, dtype=torch.float64)  # (c, D)
        if not torch.isfinite(xc).all():
            raise ValueError("features contain NaN or infinite values")
        total += xc.sum(0)
        if standardize:
            lo = torch.minimum(lo, xc.amin(0))
            hi = torch.maximum(hi, xc.amax(0))
    mean = total / n  # (D,)

    scale = None
    if standardize:
        var = torch.zeros(d, dtype=torch.float64, device=device)
        for a, b in _row_chunks(n, chunk):
            var += (x[a:b].to(device=device, dtype=torch.float64) - mean).square_().sum(0)
        scale = (var / n).sqrt_()  # population std, as sklearn's StandardScaler
        scale[hi == lo] = 1.0

    out = torch.empty((n, d), dtype=dtype, device=device)  # (N, D)
    for a, b in _row_chunks(n, chunk):
        xc = x[a:b].to(device=device, dtype=torch.float64) - mean
        if scale is not None:
            xc /= scale
        out[a:b] = xc
    return out


@contextmanager
def exact_matmul() -> Iterator[None]:
    """Full float32 precision for matmuls and cuDNN convolutions (no TF32, no reduced
    precision); restores the previous settings after."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved[0]
        torch.backends.cudnn.allow_tf32 = saved[1]
        torch.set_float32_matmul_precision(saved[2])


@contextmanager
def exact_float32(device: str | torch.device) -> Iterator[None]:
    """Forward passes whose outputs SI is measured on: float32 throughout on `device` (TF32
    off as in `exact_matmul`, and autocast off even where a caller switched it on)."""
    kind = torch.device(device).type
    with exact_matmul():
        if kind in ("cpu", "cuda"):
            with torch.autocast(device_type=kind, enabled=False):
                yield
        else:
            yield


# ----------------------------------------------------------------------------------------
# Exact nearest neighbours


def default_chunk_size(n: int, dtype: torch.dtype = torch.float32) -> int:
    """Rows per chunk so that one (chunk, n) block of distances fits DISTANCE_BUDGET_BYTES."""
    itemsize = torch.finfo(dtype).bits // 8
    return int(max(1, min(n, DISTANCE_BUDGET_BYTES // (itemsize * max(n, 1)))))


def _k_smallest(d: torch.Tensor, k: int) -> torch.Tensor:
    """Columns of the k smallest entries of each row of d (c, N), ordered by (value, column).

    topk gives the right k-th value but not a stable choice among equal values, so: take
    every entry strictly below the k-th value, then the lowest columns equal to it until k.
    """
    kth = d.topk(k, dim=1, largest=False, sorted=True).values[:, -1:]  # (c, 1)
    below = d < kth                                                     # (c, N)
    tied = d == kth                                                     # (c, N)
    need = k - below.sum(1, keepdim=True, dtype=torch.int32)            # (c, 1)
    take = below | (tied & (tied.cumsum(1, dtype=torch.int32) <= need))  # k per row
    # the k taken columns of each row, ascending: the k largest of n - column where taken
    # (a fixed shape, unlike nonzero(), so no wait for the device to say how many)
    n = d.shape[1]
    score = torch.where(take, n - torch.arange(n, device=d.device, dtype=torch.int32), 0)
    cols = n - score.topk(k, dim=1).values.long()  # (c, k)
    order = d.gather(1, cols).argsort(dim=1, stable=True)  # stable: ties keep column order
    return cols.gather(1, order)


def nearest_neighbors(
    features: ArrayLike,
    k: int = 1,
    *,
    chunk_size: int | None = None,
    dtype: torch.dtype = torch.float32,
    standardize: bool = False,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Indices (N, k) of the k nearest other samples of each sample, nearest first.

    features: (N, ...) tensor or array, flattened per sample. Exact Euclidean search; the
    sample itself is excluded by index (a duplicate at distance 0 counts), equal distances
    go to the lowest index. `chunk_size` rows of distances at a time (default:
    `default_chunk_size`, ~256 MiB); `dtype` float32 (features centred first) or float64;
    `standardize` scales every feature to unit variance (constant features become 0).
    Runs on `device`, by default the features' device; the result (int64) stays there.
    """
    x = _flat_features(features)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 samples, got {n}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < n:
        raise ValueError(f"k (the order) must be an integer with 1 <= k < N = {n}, got {k!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    device = _resolve_device(x, device)
    chunk = default_chunk_size(n, dtype) if chunk_size is None else min(int(chunk_size), n)

    xs = _centred(x, dtype, standardize, device)  # (N, D), centred
    sq = xs.square().sum(1)  # (N,)
    if sq.max() > torch.finfo(dtype).max / 8:  # a.b and the sum could overflow
        raise ValueError("features too large for squared distances in "
                         f"{dtype}; use dtype=torch.float64 or standardize=True")

    out = torch.empty((n, k), dtype=torch.long, device=device)  # (N, k)
    with exact_matmul():
        for a, b in _row_chunks(n, chunk):
            d = torch.addmm(sq[None, :], xs[a:b], xs.T, alpha=-2.0)  # (c, N)
            d += sq[a:b, None]
            d.clamp_(min=0.0)
            rows = torch.arange(b - a, device=device)
            d[rows, rows + a] = float("inf")  # self, by index, in every chunk
            out[a:b] = _k_smallest(d, k)
    return out


# ----------------------------------------------------------------------------------------
# Separation indices


def check_order(order: int) -> int:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order must be an integer >= 1, got {order!r}")
    return int(order)


def si_from_neighbors(neighbors: torch.Tensor, labels: ArrayLike) -> dict[str, float]:
    """SI values from neighbour indices (N, r), nearest first, and labels (N,).

    Returns {"si": first-order SI (first column only), "si_high": high-order SI(r),
    "si_soft": soft SI(r)}.
    """
    if neighbors.ndim != 2 or neighbors.shape[1] < 1:
        raise ValueError("neighbors must have shape (N, r) with r >= 1, got "
                         f"{tuple(neighbors.shape)}")
    y = label_codes(labels, neighbors.shape[0]).to(neighbors.device)  # (N,)
    same = y[neighbors] == y[:, None]  # (N, r)
    return {
        "si": same[:, 0].double().mean().item(),
        "si_high": same.all(1).double().mean().item(),
        "si_soft": same.double().mean(1).mean().item(),
    }


def separation_indices(
    features: ArrayLike,
    labels: ArrayLike,
    order: int = DEFAULT_ORDER,
    *,
    chunk_size: int | None = None,
    dtype: torch.dtype = torch.float32,
    standardize: bool = False,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """First-order, high-order SI(order) and soft SI(order) from one neighbour search."""
    x = _flat_features(features)
    label_codes(labels, x.shape[0])  # validate before the expensive part
    nn_idx = nearest_neighbors(x, check_order(order), chunk_size=chunk_size, dtype=dtype,
                               standardize=standardize, device=device)
    return si_from_neighbors(nn_idx, labels)


def separation_index(
    features: ArrayLike,
    labels: ArrayLike,
    order: int = 1,
    soft: bool = False,
    *,
    chunk_size: int | None = None,
    dtype: torch.dtype = torch.float32,
    standardize: bool = False,
    device: str | torch.device | None = None,
) -> float:
    """The Separation Index of `features` (N, ...) with `labels` (N,).

    order=1: share of samples whose nearest other sample has their label (leave-one-out
    1-NN accuracy). order=r: share whose r nearest others all have it (high-order SI), or
    with soft=True the mean share of the r nearest others that have it (soft SI). Exact;
    see `nearest_neighbors` for ties, chunking, precision and devices.
    """
    values = separation_indices(features, labels, order, chunk_size=chunk_size, dtype=dtype,
                                standardize=standardize, device=device)
    if order == 1:
        return values["si"]
    return values["si_soft"] if soft else values["si_high"]


def _class_means(x: torch.Tensor, y: torch.Tensor, n_classes: int,
                 device: torch.device) -> torch.Tensor:
    """Mean of each class's rows of x (N, D): float64 (classes, D) on `device`.

    y: class codes (N,) on `device`. The rows are sorted by class (stably, so each class's
    rows keep their order) and each class summed by ordinary reductions over row chunks
    taken in order, which give the same bits on every run; `index_add_` adds with atomics
    on CUDA, in whatever order the threads come, so a mean's last bits (and with them a near
    tie between two means) could change from run to run.
    """
    n, d = x.shape
    by_class = torch.argsort(y, stable=True).to(x.device)  # (N,) class 0's rows, class 1's, ...
    counts = torch.bincount(y, minlength=n_classes)
    ends = counts.cumsum(0).tolist()
    sums = torch.zeros((n_classes, d), dtype=torch.float64, device=device)  # (classes, D)
    chunk = max(1, PREPARE_BUDGET_BYTES // (8 * max(d, 1)))
    for k, (start, end) in enumerate(zip([0] + ends[:-1], ends)):
        rows = by_class[start:end]  # class k's rows, ascending
        for a, b in _row_chunks(len(rows), chunk):
            xc = x[rows[a:b]].to(device=device, dtype=torch.float64)  # (c, D)
            if not torch.isfinite(xc).all():
                raise ValueError("features contain NaN or infinite values")
            sums[k] += xc.sum(0)
    return sums / counts.to(torch.float64)[:, None]


def center_separation_index(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> float:
    """Center SI: share of samples whose nearest class mean (of the same data) is their own.

    Equals the training accuracy of a nearest-centroid classifier. Computed in float64 from
    the differences x - mean_c themselves (no expansion), chunk_size rows at a time (default:
    about 256 MiB of float64 differences); equal distances go to the lowest class index
    (classes are the sorted distinct labels). The class means are summed in a fixed order,
    so a run on CUDA gives the same value every time (`_class_means`).
    """
    x = _flat_features(features)
    n, d = x.shape
    if n < 1:
        raise ValueError("need at least 1 sample")
    y = label_codes(labels, n)
    device = _resolve_device(x, device)
    y = y.to(device)
    n_classes = int(y.max()) + 1

    means = _class_means(x, y, n_classes, device)  # (C, D)

    if chunk_size is None:
        chunk = max(1, DISTANCE_BUDGET_BYTES // (8 * n_classes * max(d, 1)))
    else:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        chunk = int(chunk_size)
    correct = 0
    for a, b in _row_chunks(n, chunk):
        xc = x[a:b].to(device=device, dtype=torch.float64)  # (c, D)
        dist = (xc[:, None, :] - means[None]).square_().sum(-1)  # (c, C)
        correct += int((dist.argmin(1) == y[a:b]).sum())  # argmin: first (lowest) on ties
    return correct / n


def _grouped(features, unit: str) -> torch.Tensor:
    """(N, F, L) float64 view of the candidates: F features of L values each, on the
    features' device."""
    x = torch.as_tensor(features)
    n = x.shape[0]
    if unit == "channel":
        if x.ndim < 2:
            raise ValueError(f"unit 'channel' needs features (N, C, ...), got shape {tuple(x.shape)}")
        return x.reshape(n, x.shape[1], -1).to(torch.float64)
    return x.reshape(n, -1, 1).to(torch.float64)


def _by_feature(features, unit: str) -> torch.Tensor:
    """(F, L, N) float64 copy of the candidates, on the features' device: one value of one
    feature over all samples is a contiguous row (what `si_curve` reads)."""
    x = torch.as_tensor(features)
    n = x.shape[0]
    if unit == "channel":
        if x.ndim < 2:
            raise ValueError(f"unit 'channel' needs features (N, C, ...), got shape {tuple(x.shape)}")
        x = x.reshape(n, x.shape[1], -1)
    else:
        x = x.reshape(n, -1, 1)
    out = torch.empty(x.shape[1:] + (n,), dtype=torch.float64, device=x.device)
    return out.copy_(x.permute(1, 2, 0))  # (F, L, N)


def center_si_curve(features, labels, order, unit: str = "channel") -> list[float]:
    """Center SI of every prefix of `order`: out[i] = CSI of the features order[:i + 1].

    Squared distances to the class means add over features, so each step adds one
    feature's (N, classes) contribution (float64, differences taken directly) and takes the
    nearest mean, ties to the lowest class index, as `center_separation_index` does. A
    feature is a channel (its H*W values together) or, with unit "element", one value.
    Computed on the features' device (labels may be anywhere); the curve is a host list.
    """
    if unit not in ("channel", "element"):
        raise ValueError(f"unit must be 'channel' or 'element', got {unit!r}")
    x = _grouped(features, unit)  # (N, F, L)
    dev = x.device
    y = label_codes(labels, x.shape[0]).to(dev)  # (N,)
    n_classes = int(y.max()) + 1
    means = _class_means(x.reshape(x.shape[0], -1), y, n_classes, dev).reshape(
        (n_classes,) + x.shape[1:])  # (classes, F, L)
    dist = torch.zeros((x.shape[0], n_classes), dtype=torch.float64, device=dev)
    hits = []  # kept on the device: one host read at the end, not one per step
    for f in order:
        dist += (x[:, None, f, :] - means[None, :, f, :]).square().sum(-1)  # (N, classes)
        hits.append((dist.argmin(1) == y).sum())
    if not hits:
        return []
    return [int(h) / x.shape[0] for h in torch.stack(hits).tolist()]


def _hits_along(x: torch.Tensor, y: torch.Tensor, order: list[int], memory_budget: int,
                every_step: bool) -> list[int]:
    """Samples whose nearest other shares their label, with the features order[:i + 1] for
    every i (every_step) or with all of `order` only: the one loop behind `si_curve` and
    `si_all_features`.

    x: (F, L, N) float64 (`_by_feature`), y: codes (N,), both on one device. A block of
    rows at a time, the squared distances of its samples to all N are summed feature by
    feature in the order of `order`, each feature's contribution the sum of its L squared
    differences value by value (differences taken directly, no expansion), as in the forward
    selection: every pair gets the same float64 sum whatever the block, self excluded by
    index, ties to the lowest index.
    """
    _, n_values, n = x.shape
    if x.device.type == "cpu":
        memory_budget = min(memory_budget, CPU_BLOCK_BYTES)
    rows = max(1, memory_budget // (8 * 4 * n))  # dist, one square, the sum and a difference
    hits = torch.zeros(len(order) if every_step else 1, dtype=torch.int64, device=x.device)
    for a in range(0, n, rows):
        b = min(n, a + rows)
        dist = torch.zeros((b - a, n), dtype=torch.float64, device=x.device)  # (R, N)
        own = torch.arange(a, b, device=x.device)
        dist[own - a, own] = float("inf")  # self, by index
        for i, f in enumerate(order):
            acc = None
            for v in range(n_values):
                d = x[f, v, a:b, None] - x[f, v, None, :]  # (R, N)
                sq = d * d
                acc = sq if acc is None else acc + sq
            dist += acc
            if every_step or i == len(order) - 1:
                hits[i if every_step else 0] += (y[dist.argmin(1)] == y[a:b]).sum()
    return hits.tolist()


def si_curve(features, labels, order, unit: str = "channel", *,
             memory_budget: int = DISTANCE_BUDGET_BYTES) -> list[float]:
    """SI of every prefix of `order`: out[i] = SI of the features order[:i + 1].

    Squared distances add over features, so each step adds one feature's contribution to
    every pair. As in the forward selection: float64, each pair's contribution the sum of
    its L = H*W squared differences value by value (differences taken directly, no
    expansion), the contributions summed in the order of `order`, self excluded by index and
    ties to the lowest index. So on the data a ranking was chosen on, this curve is the
    ranking's own SI curve; on other data (e.g. si_test) it is that data's SI along the same
    order. Memory: a float64 (F, L, N) copy of the features and row blocks of about
    `memory_budget` bytes (on CPU at most CPU_BLOCK_BYTES, which stay in cache).
    Computed on the features' device; the curve is a host list.
    """
    if unit not in ("channel", "element"):
        raise ValueError(f"unit must be 'channel' or 'element', got {unit!r}")
    x = _by_feature(features, unit)  # (F, L, N)
    n = x.shape[2]
    if n < 2:
        raise ValueError(f"need at least 2 samples for a nearest other sample, got N={n}")
    y = label_codes(labels, n).to(x.device)
    order = [int(f) for f in order]
    if not order:
        return []
    return [h / n for h in _hits_along(x, y, order, memory_budget, every_step=True)]


def si_all_features(features, labels, unit: str = "channel", *, first=(),
                    memory_budget: int = DISTANCE_BUDGET_BYTES) -> float:
    """SI of all the features together, computed as `si_curve` computes its points.

    The features in `first` (e.g. a ranking's order) are summed first, in that order, then
    the others in ascending order. So a ranking that took every feature ends on this very
    value (the same float64 sums), and the SI of all features and the last point of its
    curve cannot disagree by a rounding. Exact: the leave-one-out 1-NN accuracy on all the
    values. Memory as `si_curve`; time about that of a ranking's first step (every
    feature's squared differences on every pair).
    """
    if unit not in ("channel", "element"):
        raise ValueError(f"unit must be 'channel' or 'element', got {unit!r}")
    x = _by_feature(features, unit)  # (F, L, N)
    n_features, _, n = x.shape
    if n < 2:
        raise ValueError(f"need at least 2 samples for a nearest other sample, got N={n}")
    y = label_codes(labels, n).to(x.device)
    head = [int(f) for f in first]
    if len(set(head)) != len(head) or any(not 0 <= f < n_features for f in head):
        raise ValueError(f"first must list distinct feature indices in [0, {n_features}), "
                         f"got {list(first)!r}")
    order = head + sorted(set(range(n_features)) - set(head))
    return _hits_along(x, y, order, memory_budget, every_step=False)[0] / n
