"""The layers of a trained model, measured: the table of SI at every layer, the extractor's
and the classifier's (the workflow's `layer_si` rule). One layer's activations are read by
`activations.layer_activations`; the table walks every layer once, in order.

Layers another model has too are not measured twice: when the normalisation and the first
layers of the extractor are identical to those of a model whose table exists (every state
tensor equal, `identical_rows`), their rows are copied from that table, with the column
`reused_from` naming it; the forward pass still runs through them to reach the others.

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

from .artifacts import atomic_path, provenance, read_json, write_json
from .data import load_dataset
from .devices import pick_device
from .model import Network, load_model
from .si import (DEFAULT_ORDER, PRECISION, center_separation_index, check_order, exact_float32,
                 label_codes, nearest_neighbors, si_from_neighbors)
from .splits import load_split

DEFAULT_BATCH_SIZE = 500  # images per forward pass

ArrayLike = torch.Tensor | np.ndarray

LAYER_COLUMNS = ["layer_index", "layer", "kind", "channels", "height", "width", "features",
                 "si", "center_si", "si_high", "si_soft", "order", "seconds", "precision",
                 "reused_from"]


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


# ----------------------------------------------------------------------------------------
# Which rows two models share


def _same_module(a: nn.Module, b: nn.Module) -> bool:
    """Same structure and hyperparameters (repr), and every state tensor (parameters and
    buffers, BatchNorm's running statistics and counter included) of the same shape, dtype and
    values."""
    if repr(a) != repr(b):
        return False
    sa, sb = a.state_dict(), b.state_dict()
    if list(sa) != list(sb):
        return False
    return all(sa[k].shape == sb[k].shape and sa[k].dtype == sb[k].dtype
               and torch.equal(sa[k], sb[k].to(sa[k].device)) for k in sa)


def identical_rows(model: Network, source: Network) -> int:
    """How many leading rows of `model`'s layer table are those of `source`'s, decided on the
    weights, never on names: 0 when the input normalisations differ, else 1 (the input row)
    plus the number of extractor layers, from the first on, whose modules are identical
    (`_same_module`) to `source`'s at the same place. The first layer that differs, and every
    layer after it, must be measured: its input is no longer the same. Classifier rows are
    never shared (the study's models each train their own classifier)."""
    if not _same_module(model.normalize, source.normalize):
        return 0
    n = 1
    for (_, kind, mod), (_, src_kind, src_mod) in zip(model.feature_layers(),
                                                       source.feature_layers()):
        if kind != src_kind or not _same_module(mod, src_mod):
            break
        n += 3 if kind == "block" else 1  # a block's two inner rows, then its own
    return n


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
    reuse: pd.DataFrame | None = None,
    reused_from: str = "",
) -> pd.DataFrame:
    """SI, Center SI, high-order and soft SI(order) of the input and of every layer: the
    feature extractor's, then the classifier's.

    model: a `sicompress.model.Network`; images: uint8 (N, 32, 32, 3) numpy (as on disk) or uint8
    tensor (N, 3, 32, 32), un-augmented; labels: (N,). One row for the normalised input
    (layer_index 0, kind "input"), one per layer of `model.features` (a conv block's output
    after its ReLU, kind "conv"; a pool's output, kind "pool"; a residual block's output,
    kind "block", after two rows of kind "inner" for the convs inside it,
    `Network.inner_layers`; the global average pool, kind "avgpool"), then one per output of the
    classifier (`Network.classifier_layers`): each hidden layer after its ReLU (fc1, fc2, ...,
    kind "fc"; dropout is the identity in eval mode) and the logits (kind "logits"); for a
    classifier, channels is the width and height = width = 1. A fixed index selection at the
    classifier's input (unit "element") is part of fc1's row, not a row of its own. 22 rows
    for VGG16 with two hidden layers. Columns: LAYER_COLUMNS; SI is taken on the whole
    flattened C*H*W output, `seconds` is the time of that row's SI values (not of the forward
    pass). order=5 by default: the five nearest others are still a local neighbourhood in
    classes of hundreds of samples, yet one odd neighbour no longer decides alone.

    reuse: rows of another model's table on the same images and labels (one split), taken
    instead of measured for layer_index 0 .. len(reuse) - 1, their `reused_from` set to
    `reused_from`; the caller vouches that those layers are identical (`identical_rows`).
    The forward pass still runs through them; each row must name the same kind and shape.

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

    reused = _reused_rows(reuse, reused_from)
    rows = []

    def measure(index: int, name: str, kind: str, acts: torch.Tensor) -> None:
        c, h, w = acts.shape[1:] if acts.ndim == 4 else (acts.shape[1], 1, 1)  # classifier: (N, F)
        if index < len(reused):
            row = reused[index]
            if (row["kind"], row["channels"], row["height"], row["width"]) != (kind, c, h, w):
                raise ValueError(f"reused row {index} ({row['layer']}, {row['kind']} "
                                 f"{row['channels']}x{row['height']}x{row['width']}) is not "
                                 f"layer {name} ({kind} {c}x{h}x{w}) of this model")
            if row["order"] != order:
                raise ValueError(f"reused row {index} has order {row['order']}, not {order}")
            rows.append({**row, "layer": name})
        else:
            _sync(keep_device)
            start = time.perf_counter()
            flat = acts.reshape(n, -1)  # (N, C*H*W)
            nn_idx = nearest_neighbors(flat, order, chunk_size=chunk_size, dtype=dtype)
            values = si_from_neighbors(nn_idx, y)
            del nn_idx
            csi = center_separation_index(flat, y)
            _sync(keep_device)
            rows.append({"layer_index": index, "layer": name, "kind": kind, "channels": c,
                         "height": h, "width": w, "features": c * h * w, "si": values["si"],
                         "center_si": csi, "si_high": values["si_high"],
                         "si_soft": values["si_soft"], "order": order,
                         "seconds": time.perf_counter() - start, "precision": PRECISION,
                         "reused_from": ""})
        if progress is not None:
            progress(rows[-1])

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), exact_float32(run_device):
            acts = _apply_in_batches(model.normalize, x, batch_size, run_device, keep_device)
            measure(0, "input", "input", acts)
            index = 0
            for name, kind, module in model.feature_layers() + model.classifier_layers():
                if kind == "block":  # the convs inside a residual block: rows of their own
                    for inner_name, inner_kind, inner in model.inner_layers(name):
                        index += 1
                        measure(index, inner_name, inner_kind,
                                _apply_in_batches(inner, acts, batch_size, run_device,
                                                  keep_device))
                acts = _apply_in_batches(module, acts, batch_size, run_device, keep_device)
                index += 1
                measure(index, name, kind, acts)
    finally:
        model.train(was_training)
    if len(reused) > len(rows):
        raise ValueError(f"{len(reused)} rows to reuse, but the model has {len(rows)}")
    return pd.DataFrame(rows, columns=LAYER_COLUMNS)


def _reused_rows(reuse: pd.DataFrame | None, reused_from: str) -> list[dict]:
    """The rows to copy, as dicts by layer_index 0, 1, ..., checked to be one split's prefix."""
    if reuse is None or reuse.empty:
        return []
    if not reused_from:
        raise ValueError("reuse needs reused_from: the table the rows come from")
    missing = [c for c in LAYER_COLUMNS if c not in reuse.columns and c != "reused_from"]
    if missing:
        raise ValueError(f"rows to reuse lack columns {missing}")
    part = reuse.sort_values("layer_index")
    if part["layer_index"].tolist() != list(range(len(part))):
        raise ValueError("rows to reuse must be layer_index 0, 1, ... of one split, got "
                         f"{part['layer_index'].tolist()}")
    out = []
    for row in part.to_dict("records"):
        row = {c: row[c] for c in LAYER_COLUMNS if c != "reused_from"}
        for c in ("layer_index", "channels", "height", "width", "features", "order"):
            row[c] = int(row[c])
        out.append({**row, "reused_from": str(reused_from)})
    return out


# ----------------------------------------------------------------------------------------
# Workflow entry point: the layer table of a saved model on the SI subsets


def write_layer_table(*, model_path, data_npz, split_npz, out_csv, out_json=None,
                      order: int = DEFAULT_ORDER, batch_size: int = DEFAULT_BATCH_SIZE,
                      source_table=None, source_model=None,
                      device: str | None = None, log=print) -> pd.DataFrame:
    """`layer_separation` of a checkpoint on `si_train` and `si_test` (column `split`), written
    to `out_csv`, with its provenance (code version, settings, device, the rows reused and
    from where) in `out_json` (default: `sidecar(out_csv)`).

    source_table, source_model: another model's layer table (made on the same data, split
    and order) and its checkpoint. The rows of the layers this model shares with it
    (`identical_rows`, decided on the weights) are copied from that table, not measured."""
    if (source_table is None) != (source_model is None):
        raise ValueError("pass source_table and source_model together, or neither")
    dev = pick_device(device, log=log)
    log(f"{model_path}: forward passes and SI on {dev} ({PRECISION})")
    model = load_model(model_path, map_location=dev)
    ds = load_dataset(data_npz)
    split = load_split(split_npz)
    subsets = {"train": (ds.x_train, ds.y_train, split["si_train"]),
               "test": (ds.x_test, ds.y_test, split["si_test"])}
    n_reused, source = 0, None
    if source_table is not None:
        source = _source_rows(model, source_table, source_model, data_npz=data_npz,
                              split_npz=split_npz, order=order, device=dev, log=log)
        n_reused = 0 if source is None else len(source[source["split"] == "train"])
    tables = []
    for name, (x, y, idx) in subsets.items():
        t0 = time.perf_counter()
        def progress(row: dict, name: str = name) -> None:
            how = f"reused from {row['reused_from']}" if row["reused_from"] else \
                f"{row['seconds']:.1f} s"
            log(f"si_{name}: {row['layer']:<7} {row['features']:>7,} features  "
                f"SI {row['si']:.4f}  Center SI {row['center_si']:.4f}  {how}")

        reuse = None if source is None else source[source["split"] == name]
        table = layer_separation(model, x[idx], y[idx], order=order, batch_size=batch_size,
                                 progress=progress, reuse=reuse,
                                 reused_from="" if source is None else str(source_table))
        table.insert(0, "split", name)
        tables.append(table)
        log(f"{model_path}: SI of {len(table)} layers on si_{name} ({len(idx)} images, "
            f"{n_reused} rows reused) in {time.perf_counter() - t0:.1f} s; SI "
            f"{table['si'].iloc[0]:.3f} (input) -> {table['si'].iloc[-1]:.3f} "
            f"({table['layer'].iloc[-1]}), Center SI {table['center_si'].iloc[0]:.3f} -> "
            f"{table['center_si'].iloc[-1]:.3f}")
    out = pd.concat(tables, ignore_index=True)
    with atomic_path(out_csv) as tmp:
        out.to_csv(tmp, index=False)
    rows = {name: int((out["split"] == name).sum()) for name in subsets}
    reused = {name: int(((out["split"] == name) & (out["reused_from"] != "")).sum())
              for name in subsets}
    write_json(out_json or sidecar(out_csv), provenance(settings={
        "model": str(model_path), "data": str(data_npz), "split": str(split_npz),
        "order": order, "batch_size": batch_size, "device": str(dev), "precision": PRECISION,
        "rows": rows, "reused_rows": reused,
        "computed_rows": {name: rows[name] - reused[name] for name in subsets},
        "reused_from": None if source_table is None else str(source_table),
        "source_model": None if source_model is None else str(source_model)}))
    return out


def read_layer_table(path) -> pd.DataFrame:
    """A layer table as written by `write_layer_table` (`reused_from` "" where measured; a
    table from before that column reads as all measured)."""
    table = pd.read_csv(path)
    if "reused_from" not in table.columns:
        table["reused_from"] = ""
    col = table["reused_from"].astype(object)
    table["reused_from"] = col.where(col.notna(), "").astype(str)  # measured: written as ""
    return table


def _source_rows(model: Network, source_table, source_model, *, data_npz, split_npz, order: int,
                 device, log) -> pd.DataFrame | None:
    """The rows of `source_table` (both splits) that `model` shares with `source_model`
    (`identical_rows`), or None when none are shared or the table is of other data or
    settings (then every row is measured, and the log says why)."""
    source = load_model(source_model, map_location=device)
    n = identical_rows(model, source)
    shared = [name for name, _, _ in source.feature_layers()][:max(0, n - 1)]
    del source
    if n == 0:
        log(f"no row reused from {source_table}: the input normalisation differs from "
            f"{source_model}'s")
        return None
    table = read_layer_table(source_table)
    side = sidecar(source_table)
    settings = read_json(side).get("settings", {}) if side.is_file() else {}
    problems = []
    if (settings.get("data"), settings.get("split")) != (str(data_npz), str(split_npz)):
        problems.append(f"it was made on data {settings.get('data')}, split "
                        f"{settings.get('split')} ({side}), not {data_npz}, {split_npz}")
    if set(table["order"]) != {order}:
        problems.append(f"its order is {sorted(set(table['order']))}, not {order}")
    if set(table["precision"]) != {PRECISION}:
        problems.append(f"its precision is {sorted(set(table['precision']))}")
    parts = []
    for name in ("train", "test"):
        part = table[(table["split"] == name) & (table["layer_index"] < n)]
        if sorted(part["layer_index"]) != list(range(n)):
            problems.append(f"its {name} rows lack some of layer_index 0..{n - 1}")
        parts.append(part)
    if problems:
        log(f"no row reused from {source_table}: {'; '.join(problems)}")
        return None
    what = "the input normalisation" + (f" and layers {', '.join(shared)} are" if shared
                                         else " is")
    log(f"{n} {'row' if n == 1 else 'rows'} per split reused from {source_table}: {what} "
        f"identical to {source_model}'s (every state tensor equal); the other rows are measured")
    return pd.concat(parts, ignore_index=True)


def sidecar(table_csv) -> Path:
    """Where the provenance of a layer table lives: layer_si.json beside layer_si.csv."""
    return Path(table_csv).with_suffix(".json")
