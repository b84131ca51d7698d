"""A frozen extractor's outputs, computed once: what every classifier-only training reads.

Head (b), the compressed model (c), its controls and frontier points, and the layer-wise
pruned models all train a classifier on an extractor that does not change. Sending every
image through that extractor again in every epoch of every training repeats the same
forward pass; here it runs once per extractor, and the trainings read its outputs.

- One file set per extractor (`results/features/<extractor>/`): e2e's whole extractor (head),
  e2e's prefix up to the cut layer (the compressed model, every selector, repeat and frontier
  point: they all keep channels of that one layer's output, and slicing a conv's output
  channels commutes with its BatchNorm, ReLU and a max-pool after it), and each layer-wise
  pruned extractor.
- `train.npy` and `val.npy` (the split's train and val images, in the split's order) hold
  the outputs channel-major, (C, N, H*W), so that a training keeping k of C channels reads k
  contiguous blocks of the file (memory-mapped) and nothing else. Labels in
  `train_labels.npy`, `val_labels.npy`; shape, layer, storage type and provenance (the model
  and data fingerprints) in `features.json`.
- The outputs are computed in the numeric format the saved model is tested in (the engine's
  `forward_format`: float32 on a CPU; bf16 autocast and channels_last on CUDA where
  `compute.bf16` / `compute.channels_last` say so), so that a classifier chooses its best epoch
  on the very numbers its test pass computes. `val.npy` is stored as float32, exactly those
  numbers; `train.npy` as float16, bfloat16 (as its 16 bits, numpy having no bfloat16) or
  float32 (`classifier_features.dtype`). A training converts each batch to float32. Every
  block is checked to be finite once stored: float16 holds at most 65,504, and an output
  beyond it is an error naming the layer and the largest value (bfloat16 or float32 hold it).
- The test set is not cached: every training tests the saved model (extractor and
  classifier) on the test images, as every later stage (layer SI, McNemar, latency) uses it,
  so a test accuracy never depends on how the cache was stored.
- A cached view has no random crop or flip: the augmented path (`classifier_features.source:
  augmented`) keeps the per-epoch forward pass for that.

`CachedClassifier` is what the training engine (`engine.fit`, with settings.inputs
"features") trains: the model's own classifier module, fed float32 features.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from . import artifacts
from .activations import stages
from .devices import pick_device
from .engine import ForwardFormat, forward_format
from .layerwise import pruned_network
from .model import Network, load_model
from .splits import load_study_data

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
# numpy storage of each: bfloat16 is kept as its raw 16 bits
_NUMPY = {"float16": np.float16, "bfloat16": np.uint16, "float32": np.float32}
SPLITS = ("train", "val")
VAL_DTYPE = "float32"  # val.npy: the numbers the test pass computes, not rounded
META = "features.json"
FILES = ("train.npy", "val.npy", "train_labels.npy", "val_labels.npy", META)

# The check of a cache against the model that reads it: its extractor on a few validation
# images must give the cached outputs, to the storage type's rounding.
CHECK_IMAGES = 16
# Images per forward pass of the cache on a CPU: at width 0.125 up to conv4_3 on 2 cores the
# 50,000 images took 5.3 s at 256 (and at 128) against 6.9 s at 500 (smaller blocks stay in
# the caches); on a GPU compute.si_batch_size, larger, fills the device better.
CPU_BATCH = 256
CHECK_RTOL = 1e-5  # of the largest output: val.npy against the same forward on other batches
CHECK_RTOL_BF16 = 1.6e-2  # the same under bf16 autocast (cuDNN picks per batch shape)


# ----------------------------------------------------------------------------------------
# Writing


def _last_layer(model: Network, layer: str | None) -> str:
    """`layer`, or the last layer of `model`'s extractor when None (the whole extractor)."""
    return model.arch["features"][-1]["name"] if layer is None else layer


@torch.no_grad()
def extractor_outputs(model: Network, images: torch.Tensor, layer: str,
                      fmt: ForwardFormat) -> torch.Tensor:
    """The output of `layer` for uint8 images, computed as the engine's evaluation computes
    it in format `fmt` (autocast, memory format; TF32 as the engine leaves it): (N, C, H, W)
    float32. The model's previous mode is restored."""
    was_training = model.training
    model.eval()
    try:
        x = images
        if fmt.channels_last:
            model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        with fmt.autocast(x.device):
            x = model.normalize(x)
            for module in stages(model, layer):
                x = module(x)
        return x.float().contiguous()
    finally:
        model.train(was_training)


def meta_format(meta: dict) -> ForwardFormat:
    """The forward format a cache was computed in (features.json's `format`)."""
    f = meta.get("format") or {}
    return ForwardFormat(bf16=bool(f.get("bf16", False)),
                         channels_last=bool(f.get("channels_last", False)))


def _check_finite(block: torch.Tensor, out: torch.Tensor, layer: str, dtype: str) -> None:
    if not bool(torch.isfinite(block).all()):
        largest = float(out.abs().max())
        raise ValueError(
            f"features at {layer} are not finite once stored as {dtype}: the largest output "
            f"is {largest:.6g}" + (" (float16 holds at most 65,504)" if dtype == "float16" else "")
            + "; set classifier_features.dtype: bfloat16 or float32 to store them")


def write_features(model: Network, layer: str | None, data: dict[str, tuple[torch.Tensor,
                   torch.Tensor]], out_dir: str | Path, *, dtype: str = "float16",
                   batch_size: int = 500, describe: dict | None = None,
                   fmt: ForwardFormat | None = None,
                   log: Callable[[str], None] = print) -> dict:
    """Compute and write the outputs of `model`'s extractor up to `layer` for every split of
    `data` ({"train": (uint8 images on the model's device, labels), "val": ...}), chunk by
    chunk into memory-mapped files, in forward format `fmt` (None: float32); returns (and
    writes) the description."""
    fmt = fmt or ForwardFormat(bf16=False, channels_last=False)
    if dtype not in DTYPES:
        raise ValueError(f"classifier_features.dtype must be one of {sorted(DTYPES)}, "
                         f"got {dtype!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = data["train"][0].device
    model.to(device).eval()
    t0 = time.perf_counter()
    shape, sizes = None, {}
    name = _last_layer(model, layer)
    for split in SPLITS:
        x, y = data[split]
        n = len(x)
        stored = VAL_DTYPE if split == "val" else dtype
        with artifacts.atomic_path(out_dir / f"{split}.npy") as tmp:
            arr = None
            for a in range(0, n, batch_size):
                out = extractor_outputs(model, x[a:a + batch_size], name, fmt)
                c, h, w = out.shape[1:]
                shape = [int(c), int(h), int(w)]
                if arr is None:
                    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=_NUMPY[stored],
                                                    shape=(c, n, h * w))
                # (B, C, H, W) -> (C, B, H*W), stored in the split's type
                block = out.to(DTYPES[stored]).reshape(len(out), c, h * w).transpose(0, 1)
                _check_finite(block, out, name, stored)
                arr[:, a:a + len(out)] = _to_numpy(block.cpu(), stored)
            arr.flush()
            del arr
        with artifacts.atomic_path(out_dir / f"{split}_labels.npy") as tmp:
            np.save(tmp, y.cpu().numpy().astype(np.int64))
        sizes[split] = n
    seconds = time.perf_counter() - t0
    nbytes = sum((out_dir / f"{s}.npy").stat().st_size for s in SPLITS)
    meta = {
        "layer": name,
        "shape": shape,
        "dtype": dtype,
        "val_dtype": VAL_DTYPE,
        "format": {"bf16": fmt.bf16, "channels_last": fmt.channels_last,
                   "precision": fmt.precision},
        "images": sizes,
        "bytes": nbytes,
        "seconds": seconds,
        "device": str(device),
        "model": artifacts.fingerprint(*model.state_dict().values()),
        "data": {s: artifacts.fingerprint(*data[s]) for s in SPLITS},
        **(describe or {}),
    }
    artifacts.write_json(out_dir / META, meta)
    log(f"features at {meta['layer']} ({shape[0]} x {shape[1]} x {shape[2]}, computed in "
        f"{fmt.precision}, train stored as {dtype}, val as {VAL_DTYPE}) of "
        f"{sizes['train']} train and {sizes['val']} val images: {nbytes / 2**20:.1f} MiB in "
        f"{seconds:.1f} s on {device}")
    return meta


def _to_numpy(t: torch.Tensor, dtype: str) -> np.ndarray:
    return t.view(torch.int16).numpy().view(np.uint16) if dtype == "bfloat16" else t.numpy()


def _from_numpy(a: np.ndarray, dtype: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.view(torch.bfloat16) if dtype == "bfloat16" else t


# ----------------------------------------------------------------------------------------
# The study's extractors


def cache_features(*, source_model, data_npz, split_npz, summary_json, out_dir,
                   layer: str | None = None, cut_json=None, pruned_json=None,
                   kept_json=None, dtype: str = "float16",
                   batch_size: int = 500, config: dict | None = None,
                   device: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Write the features of one of the study's frozen extractors (module notes):
    e2e's whole extractor (no cut_json, no pruned_json), its prefix up to the cut layer
    (cut_json: cut.json), or the layer-wise pruned extractor with one criterion's channels
    (pruned_json: pruned.json; kept_json: that choice's kept.json, which its trainings read
    too)."""

    dev = pick_device(device, log=log)
    if dev.type == "cpu":
        batch_size = min(batch_size, CPU_BATCH)
    describe = {"source_model": str(source_model)}
    seed = None  # the seed that drew the channels, for a seeded criterion's choice
    if pruned_json is not None:
        if kept_json is None:
            raise ValueError("a layer-wise pruned extractor needs its kept.json")
        choice = artifacts.read_json(kept_json)
        model = pruned_network(source_model, artifacts.read_json(pruned_json), choice, seed=0,
                               hidden=[], dropout=0.0, data_npz=data_npz, split_npz=split_npz,
                               batch_size=batch_size, device=dev, log=log)
        layer, seed = None, choice["seed"]
        describe.update(extractor="layerwise", selector=choice["criterion"],
                        seed=choice["seed"], kept=choice["kept"])
    else:
        model = load_model(source_model)
        if cut_json is not None:
            layer = artifacts.read_json(cut_json)["layer"]
        describe.update(extractor="cut" if layer is not None else "whole")
    data = load_study_data(data_npz, split_npz, summary_json, dev)
    model.to(dev)
    compute = (config or {}).get("compute") or {}
    # the format the trainings test their saved models in (`trainings` tests with the same)
    fmt = forward_format(dev, bf16=compute.get("bf16", True),
                         channels_last=compute.get("channels_last", True))
    meta = write_features(model, layer, {"train": data.train, "val": data.val}, out_dir,
                          dtype=dtype, batch_size=batch_size, describe=describe, fmt=fmt,
                          log=log)
    meta["provenance"] = artifacts.provenance(config, seed, settings={
        "source_model": str(source_model), "data": str(data_npz), "split": str(split_npz),
        "cut": None if cut_json is None else str(cut_json),
        "pruned": None if pruned_json is None else str(pruned_json),
        "kept": None if kept_json is None else str(kept_json), "dtype": dtype})
    artifacts.write_json(Path(out_dir) / META, meta)
    return meta


# ----------------------------------------------------------------------------------------
# Reading


@dataclass
class CachedFeatures:
    train: tuple[torch.Tensor, torch.Tensor]   # (N, k*H*W) in the stored type, labels (N,)
    val: tuple[torch.Tensor, torch.Tensor]
    meta: dict
    channels: list[int] | None                 # the channels read (None: all)


def feature_folder(path: str | Path) -> Path:
    """The folder of a cache, given the folder or its features.json (a rule's input)."""
    path = Path(path)
    return path.parent if path.name == META else path


def read_meta(folder: str | Path) -> dict:
    folder = feature_folder(folder)
    path = folder / META
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: no cached features in {folder} "
                                "(written by the cache_* rules)")
    return artifacts.read_json(path)


def load_features(folder: str | Path, device: torch.device, *,
                  channels: Sequence[int] | None = None) -> CachedFeatures:
    """The cached train and val features of `folder`, only `channels` of them (None: all),
    on `device`, flattened per image in the order the model flattens its output (channel,
    then position): (N, len(channels) * H * W)."""
    folder = feature_folder(folder)
    meta = read_meta(folder)
    c, h, w = meta["shape"]
    idx = None if channels is None else [int(i) for i in channels]
    if idx is not None and (not idx or min(idx) < 0 or max(idx) >= c):
        raise ValueError(f"channels {idx} are not channels of the {c} cached at "
                         f"{meta['layer']} in {folder}")
    out = {}
    for split in SPLITS:
        stored = meta.get("val_dtype", meta["dtype"]) if split == "val" else meta["dtype"]
        arr = np.load(Path(folder) / f"{split}.npy", mmap_mode="r")  # (C, N, H*W)
        part = np.array(arr) if idx is None else arr[idx]  # reads those channels only
        x = _from_numpy(part, stored).to(device)  # (k, N, H*W)
        x = x.transpose(0, 1).reshape(x.shape[1], -1)  # (N, k*H*W)
        y = torch.from_numpy(np.load(Path(folder) / f"{split}_labels.npy")).to(device)
        out[split] = (x, y)
    return CachedFeatures(train=out["train"], val=out["val"], meta=meta, channels=idx)


class CachedClassifier(nn.Module):
    """A model's classifier fed cached features: float32 per batch, then the classifier (its
    flattening and index selection included). Shares the classifier's parameters."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x.float())


def check_against(model: Network, features: CachedFeatures, images: torch.Tensor,
                  channels: Sequence[int] | None = None) -> float:
    """That `model`'s own extractor, in the cache's forward format, gives the cached outputs on
    the first CHECK_IMAGES validation `images` (the split's val order): a cache of another
    model, layer, channel choice or format fails here instead of training silently on the
    wrong inputs. Returns the largest difference relative to the largest output."""
    n = min(CHECK_IMAGES, len(images))
    dev = features.val[0].device
    model.to(dev)
    fmt = meta_format(features.meta)
    mine = extractor_outputs(model, images[:n].to(dev), _last_layer(model, None), fmt)
    mine = torch.flatten(mine, 1)  # (n, k*H*W)
    cached = features.val[0][:n].float()
    if mine.shape != cached.shape:
        raise ValueError(f"cached features at {features.meta['layer']} have "
                         f"{cached.shape[1]} values per image, the model's extractor gives "
                         f"{mine.shape[1]}: the cache is of another model or channel choice")
    scale = max(float(mine.abs().max()), 1e-12)
    err = float((mine - cached).abs().max()) / scale
    allowed = CHECK_RTOL_BF16 if fmt.bf16 else CHECK_RTOL
    if "val_dtype" not in features.meta:
        raise ValueError(f"the cache at {features.meta['layer']} predates float32 val features "
                         "(features.json has no val_dtype): rerun its cache_* rule")
    if err > allowed:
        raise ValueError(f"cached features at {features.meta['layer']} differ from the model's "
                         f"own extractor ({fmt.precision}) by {err:.2e} of the largest output "
                         f"(allowed {allowed:g}): the cache is of another model")
    return err
