"""What a model's layer outputs for some images: the one reader of activations.

Every measurement on activations reads them here: a layer's SI (`layer_si`), the feature
ranking of part (c) (`compression.rank_features`), each layer's ranking in the layer-wise
pruning (`layerwise`), the hidden layer's SI that picks the classifier's width, and the
frozen extractor's outputs cached for the classifier-only trainings (`feature_cache`).

A layer is named as in the layer SI tables: a layer of the extractor (conv1_1, ..., pool5:
a conv block's output after its ReLU, or a pool's output), a hidden layer of the classifier
after its ReLU (fc1, fc2, ...), or "logits". The forward pass runs in eval mode, without
gradient, in float32 with TF32 and autocast off (`si.exact_float32`), so the numbers SI is
measured on are the same on a GPU as on a CPU up to float32 rounding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .data import load_dataset
from .devices import pick_device
from .model import Network, load_model
from .si import exact_float32
from .splits import load_split

SUBSETS = {"si_train": "train", "si_test": "test"}  # SI subsets and the set each indexes


def stages(model: Network, layer: str) -> list[torch.nn.Module]:
    """The modules that take the normalised images to `layer`'s output, in order. A layer
    inside a residual block (`block1_2.conv1`, `Network.inner_layers`) is reached through the
    layers before the block."""
    layers = model.feature_layers() + model.classifier_layers()
    names = [name for name, _, _ in layers]
    if "." in layer and layer.split(".")[0] in names:
        block = layer.split(".")[0]
        kinds = dict((name, kind) for name, kind, _ in layers)
        if kinds[block] == "block":
            inner = {name: module for name, _, module in model.inner_layers(block)}
            if layer in inner:
                return [module for _, _, module in layers[:names.index(block)]] + [inner[layer]]
    if layer not in names:
        raise ValueError(f"{layer!r} is not a layer of the model; its layers are {names}")
    return [module for _, _, module in layers[:names.index(layer) + 1]]


def layer_activations(model: Network, images: torch.Tensor, layer: str, *, pool: int | None = None,
                      batch_size: int | None = None,
                      device: str | torch.device | None = None) -> torch.Tensor:
    """The output of `layer` (module notes) for uint8 or [0, 1] float images (N, 3, 32, 32):
    (N, C, H, W) for a layer of the extractor, (N, F) for the classifier's; float32, on
    `device` (default: where the model is; the model is not moved, the images are), batch by
    batch (`batch_size`; None: all at once). pool: each map of an extractor layer
    average-pooled to pool x pool first (None, or pool >= the map's size: as it is). The
    model's previous mode is restored."""
    param = next(model.parameters(), None)
    run = param.device if param is not None else torch.device("cpu")
    keep = run if device is None else torch.device(device)
    modules = stages(model, layer)
    step = len(images) if batch_size is None else batch_size
    if step < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    parts = []
    try:
        with torch.no_grad(), exact_float32(run):
            for a in range(0, len(images), step):
                x = model.normalize(images[a:a + step].to(run))
                for module in modules:
                    x = module(x)
                if pool is not None and x.ndim == 4 and pool < x.shape[-1]:
                    x = F.adaptive_avg_pool2d(x, pool)
                parts.append(x.float().to(keep))
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0, device=keep)


def subset_images(data_npz, split_npz, subset: str = "si_train") -> tuple[torch.Tensor, np.ndarray]:
    """The images of an SI subset ("si_train" of the training set, "si_test" of the test set)
    as a uint8 (N, 3, 32, 32) CPU tensor, and their labels as a host array."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {sorted(SUBSETS)}, got {subset!r}")
    ds = load_dataset(data_npz)
    idx = load_split(split_npz)[subset]
    x, y = (ds.x_train, ds.y_train) if SUBSETS[subset] == "train" else (ds.x_test, ds.y_test)
    return torch.from_numpy(np.ascontiguousarray(x[idx])).permute(0, 3, 1, 2), y[idx]


def subset_activations(model_path, data_npz, split_npz, layer: str, *, subset: str = "si_train",
                       batch_size: int = 500,
                       device: str | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """`layer`'s output of a saved model for the images of an SI subset (`subset_images`):
    (activations, float32 on `device`, None: `devices.pick_device`; labels, a host array)."""
    images, labels = subset_images(data_npz, split_npz, subset)
    dev = pick_device(device)
    model = load_model(model_path, map_location=dev)
    return layer_activations(model, images, layer, batch_size=batch_size), labels
