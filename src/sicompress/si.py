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

`layer_separation` applies these to every layer of a VGG's feature extractor.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

__all__ = ["DISTANCE_BUDGET_BYTES", "DEFAULT_ORDER", "LAYER_COLUMNS", "PRECISION",
           "center_separation_index", "default_chunk_size", "exact_float32", "exact_matmul",
           "layer_separation", "nearest_neighbors",
           "separation_index", "separation_indices", "si_from_neighbors"]

# ----------------------------------------------------------------------------------------
# Settings

DISTANCE_BUDGET_BYTES = 256 * 2**20  # one chunk of squared distances (chunk x N entries)
PREPARE_BUDGET_BYTES = 64 * 2**20    # one chunk of float64 rows while centring / scaling
DEFAULT_ORDER = 5                    # r of the high-order and soft SI in `layer_separation`
DEFAULT_BATCH_SIZE = 500             # images per forward pass in `layer_separation`

ArrayLike = torch.Tensor | np.ndarray

PRECISION = "float32, TF32 off, no autocast"  # of the forward passes and distances behind SI

LAYER_COLUMNS = ["layer_index", "layer", "kind", "channels", "height", "width", "features",
                 "si", "center_si", "si_high", "si_soft", "order", "seconds", "precision"]


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


def _label_codes(labels: ArrayLike, n: int) -> torch.Tensor:
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


def _prepare(x: torch.Tensor, dtype: torch.dtype, standardize: bool,
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

    xs = _prepare(x, dtype, standardize, device)  # (N, D), centred
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


def _check_order(order: int) -> int:
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
    y = _label_codes(labels, neighbors.shape[0]).to(neighbors.device)  # (N,)
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
    _label_codes(labels, x.shape[0])  # validate before the expensive part
    nn_idx = nearest_neighbors(x, _check_order(order), chunk_size=chunk_size, dtype=dtype,
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
    (classes are the sorted distinct labels).
    """
    x = _flat_features(features)
    n, d = x.shape
    if n < 1:
        raise ValueError("need at least 1 sample")
    y = _label_codes(labels, n)
    device = _resolve_device(x, device)
    y = y.to(device)
    n_classes = int(y.max()) + 1

    sums = torch.zeros((n_classes, d), dtype=torch.float64, device=device)  # (C, D)
    prep_chunk = max(1, PREPARE_BUDGET_BYTES // (8 * max(d, 1)))
    for a, b in _row_chunks(n, prep_chunk):
        xc = x[a:b].to(device=device, dtype=torch.float64)
        if not torch.isfinite(xc).all():
            raise ValueError("features contain NaN or infinite values")
        sums.index_add_(0, y[a:b], xc)
    means = sums / torch.bincount(y, minlength=n_classes).to(torch.float64)[:, None]

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


# ----------------------------------------------------------------------------------------
# Per-layer SI of a VGG


def _images_nchw(images: ArrayLike) -> torch.Tensor:
    """uint8 (N, 32, 32, 3) numpy (as on disk) or uint8 tensor (N, 3, 32, 32) -> (N, 3, H, W)."""
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError("numpy images must be uint8 of shape (N, H, W, 3), got "
                             f"{images.dtype} {images.shape}")
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError("tensor images must be uint8 of shape (N, 3, H, W), got "
                             f"{images.dtype} {tuple(images.shape)}")
        return images
    raise ValueError(f"images must be a numpy array or a torch tensor, got {type(images).__name__}")


def _apply_in_batches(module: nn.Module, x: torch.Tensor, batch_size: int,
                      run_device: torch.device, keep_device: torch.device) -> torch.Tensor:
    """module(x) for all N rows of x, batch by batch; the result (N, ...) on keep_device."""
    out = None
    for a, b in _row_chunks(x.shape[0], batch_size):
        y = module(x[a:b].to(run_device)).to(keep_device)  # (B, C, H, W)
        if out is None:
            out = torch.empty((x.shape[0], *y.shape[1:]), dtype=y.dtype, device=keep_device)
        out[a:b] = y
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def layer_separation(
    model: nn.Module,
    images: ArrayLike,
    labels: ArrayLike,
    *,
    order: int = DEFAULT_ORDER,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
    dtype: torch.dtype = torch.float32,
    progress: Callable[[dict], None] | None = None,
) -> pd.DataFrame:
    """SI, Center SI, high-order and soft SI(order) of the input and of every feature layer.

    model: a `sicompress.model.VGG`; images: uint8 (N, 32, 32, 3) numpy (as on disk) or uint8
    tensor (N, 3, 32, 32), un-augmented; labels: (N,). One row for the normalised input
    (layer_index 0, kind "input") and one per layer of `model.features` (a conv block's
    output after its ReLU, a pool's output): 19 rows for VGG16. Columns: LAYER_COLUMNS; SI
    is taken on the whole flattened C*H*W output, `seconds` is the time of that row's SI
    values (not of the forward pass). order=5 by default: the five nearest others are still
    a local neighbourhood in classes of hundreds of samples, yet one odd neighbour no longer
    decides alone.

    Memory: the layers are walked in order, each module applied once, in batches of
    `batch_size` images, to the stored (N, ...) output of the previous layer; so only two
    consecutive layers' activations are alive at a time (for VGG16 at width 1 and N=5000,
    conv1_x is 5000 x 65536 float32 = 1.3 GB each), plus the SI working memory (a centred
    copy of one layer and one chunk of distances). The forward runs on the model's device,
    in float32 (`exact_float32`); activations are kept, and SI computed, on `device`
    (default: the model's device). The table is a host (pandas) object.

    The model runs in eval mode under torch.no_grad(); its previous mode is restored.
    progress: called with each row (a dict of the columns) as soon as it is measured.
    """
    order = _check_order(order)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x = _images_nchw(images)  # (N, 3, H, W) uint8
    n = x.shape[0]
    y = _label_codes(labels, n)
    if not 1 <= order < n:
        raise ValueError(f"order must satisfy 1 <= order < N = {n}, got {order}")
    param = next(model.parameters(), None)
    run_device = param.device if param is not None else torch.device("cpu")
    keep_device = run_device if device is None else torch.device(device)

    rows = []

    def measure(index: int, name: str, kind: str, acts: torch.Tensor) -> None:
        _sync(keep_device)
        start = time.perf_counter()
        flat = acts.reshape(n, -1)  # (N, C*H*W)
        nn_idx = nearest_neighbors(flat, order, chunk_size=chunk_size, dtype=dtype)
        values = si_from_neighbors(nn_idx, y)
        del nn_idx
        csi = center_separation_index(flat, y)
        _sync(keep_device)
        c, h, w = acts.shape[1:]
        rows.append({"layer_index": index, "layer": name, "kind": kind, "channels": c,
                     "height": h, "width": w, "features": c * h * w, "si": values["si"],
                     "center_si": csi, "si_high": values["si_high"],
                     "si_soft": values["si_soft"], "order": order,
                     "seconds": time.perf_counter() - start, "precision": PRECISION})
        if progress is not None:
            progress(rows[-1])

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), exact_float32(run_device):
            acts = _apply_in_batches(model.normalize, x, batch_size, run_device, keep_device)
            measure(0, "input", "input", acts)
            for index, (name, kind, module) in enumerate(model.feature_layers(), start=1):
                acts = _apply_in_batches(module, acts, batch_size, run_device, keep_device)
                measure(index, name, kind, acts)
    finally:
        model.train(was_training)
    return pd.DataFrame(rows, columns=LAYER_COLUMNS)


# ----------------------------------------------------------------------------------------
# Workflow entry point: the layer table of a saved model on the SI subsets


def write_layer_table(*, model_path, data_npz, split_npz, out_csv, order: int = DEFAULT_ORDER,
                      batch_size: int = DEFAULT_BATCH_SIZE, device: str | None = None,
                      log=print) -> pd.DataFrame:
    """`layer_separation` of a checkpoint on `si_train` and `si_test` (column `split`)."""
    from .artifacts import atomic_path
    from .data import load_dataset
    from .devices import pick_device
    from .model import load_model
    from .splits import load_split

    dev = pick_device(device, log=log)
    log(f"{model_path}: forward passes and SI on {dev} ({PRECISION})")
    model = load_model(model_path, map_location=dev)
    ds = load_dataset(data_npz)
    split = load_split(split_npz)
    subsets = {"train": (ds.x_train, ds.y_train, split["si_train"]),
               "test": (ds.x_test, ds.y_test, split["si_test"])}
    tables = []
    for name, (x, y, idx) in subsets.items():
        t0 = time.perf_counter()
        def progress(row: dict, name: str = name) -> None:
            log(f"si_{name}: {row['layer']:<7} {row['features']:>7,} features  "
                f"SI {row['si']:.4f}  Center SI {row['center_si']:.4f}  {row['seconds']:.1f} s")

        table = layer_separation(model, x[idx], y[idx], order=order, batch_size=batch_size,
                                 progress=progress)
        table.insert(0, "split", name)
        tables.append(table)
        log(f"{model_path}: SI of {len(table)} layers on si_{name} ({len(idx)} images) in "
            f"{time.perf_counter() - t0:.1f} s; SI {table['si'].iloc[0]:.3f} (input) -> "
            f"{table['si'].iloc[-1]:.3f} ({table['layer'].iloc[-1]}), Center SI "
            f"{table['center_si'].iloc[0]:.3f} -> {table['center_si'].iloc[-1]:.3f}")
    out = pd.concat(tables, ignore_index=True)
    with atomic_path(out_csv) as tmp:
        out.to_csv(tmp, index=False)
    return out
