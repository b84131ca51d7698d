"""The layers of a trained model, measured: the activation of one layer, and the table of SI
at every layer (the workflow's `layer_si` rule).

The forward passes run in float32 with TF32 and autocast off (`si.exact_float32`), so the
numbers SI is measured on are the same on a GPU as on a CPU, up to float32 rounding; SI itself
is the exact one of `sicompress.si`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .artifacts import atomic_path, provenance, write_json
from .data import load_dataset
from .devices import pick_device
from .model import VGG, cut_position, load_model
from .si import (DEFAULT_ORDER, PRECISION, center_separation_index, check_order, exact_float32,
                 label_codes, nearest_neighbors, si_from_neighbors)
from .splits import load_split

DEFAULT_BATCH_SIZE = 500  # images per forward pass

ArrayLike = torch.Tensor | np.ndarray

LAYER_COLUMNS = ["layer_index", "layer", "kind", "channels", "height", "width", "features",
                 "si", "center_si", "si_high", "si_soft", "order", "seconds", "precision"]


# ----------------------------------------------------------------------------------------
# The activation of one layer


SUBSETS = {"si_train": "train", "si_test": "test"}  # SI subsets and the set each indexes


def layer_output(model: VGG, images: torch.Tensor, layer: str) -> torch.Tensor:
    """The activation after feature layer `layer` (a conv block's output after its ReLU),
    in eval mode, without gradient and in float32 (`exact_float32`: no TF32, no autocast,
    as SI needs); images (N, 3, 32, 32) uint8 or [0, 1] float, on the model's device, where
    the result stays. The model's previous mode is restored."""
    pos = cut_position(model.arch, layer)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), exact_float32(images.device):
            return model.features[:pos + 1](model.normalize(images))  # (N, C, H, W)
    finally:
        model.train(was_training)


def si_train_activations(model_path, data_npz, split_npz, layer: str, *, batch_size: int = 500,
                         device: str | None = None,
                         subset: str = "si_train") -> tuple[torch.Tensor, np.ndarray]:
    """The output of `layer` of a saved model for the `si_train` images (or, with subset
    "si_test", the si_test images of the test set): ((N, C, H, W) float32 on `device` (None:
    `devices.pick_device`), labels as a host array). The forward passes run in float32 with
    TF32 and autocast off (`layer_output`), as SI needs."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {sorted(SUBSETS)}, got {subset!r}")
    dev = pick_device(device)
    model = load_model(model_path, map_location=dev)
    ds = load_dataset(data_npz)
    idx = load_split(split_npz)[subset]
    x, y = (ds.x_train, ds.y_train) if SUBSETS[subset] == "train" else (ds.x_test, ds.y_test)
    images = torch.from_numpy(np.ascontiguousarray(x[idx])).permute(0, 3, 1, 2)
    parts = [layer_output(model, images[a:a + batch_size].to(dev), layer).float()
             for a in range(0, len(images), batch_size)]
    return torch.cat(parts), y[idx]


# ----------------------------------------------------------------------------------------
# SI at every layer of a model


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
    for a in range(0, x.shape[0], batch_size):
        b = min(x.shape[0], a + batch_size)
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
    order = check_order(order)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x = _images_nchw(images)  # (N, 3, H, W) uint8
    n = x.shape[0]
    y = label_codes(labels, n)
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


def write_layer_table(*, model_path, data_npz, split_npz, out_csv, out_json=None,
                      order: int = DEFAULT_ORDER, batch_size: int = DEFAULT_BATCH_SIZE,
                      device: str | None = None, log=print) -> pd.DataFrame:
    """`layer_separation` of a checkpoint on `si_train` and `si_test` (column `split`), written
    to `out_csv`, with its provenance (code version, settings, device) in `out_json`
    (default: `sidecar(out_csv)`)."""
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
    write_json(out_json or sidecar(out_csv), provenance(settings={
        "model": str(model_path), "data": str(data_npz), "split": str(split_npz),
        "order": order, "batch_size": batch_size, "device": str(dev), "precision": PRECISION,
        "rows": {name: int((out["split"] == name).sum()) for name in subsets}}))
    return out


def sidecar(table_csv) -> Path:
    """Where the provenance of a layer table lives: layer_si.json beside layer_si.csv."""
    return Path(table_csv).with_suffix(".json")
