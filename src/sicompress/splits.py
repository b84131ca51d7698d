"""Class-balanced subsets of the data, and the normalisation statistics of the training subset.

The official training set is cut into `train` and `val` (every image lands in exactly one);
`si_train`, drawn from `train`, and `si_test`, drawn from the official test set, are the
samples on which the Separation Index is computed. All four are sorted int64 index arrays:
into the official training arrays, except `si_test`, which indexes the test arrays.
"""

from __future__ import annotations

from pathlib import Path
from dataclasses import dataclass
from typing import Callable

import numpy as np

import torch

from .artifacts import atomic_path, provenance, read_json, write_json
from .data import load_dataset
from .engine import to_device_images

Pair = tuple[torch.Tensor, torch.Tensor]

SUBSETS = ("train", "val", "si_train", "si_test")
STATS_CHUNK = 2048                 # images per chunk for the mean / std (bounds memory)


# ----------------------------------------------------------------------------------------
# The split


def make_split(y_train: np.ndarray, y_test: np.ndarray, *, val_fraction: float = 0.1,
               si_fraction: float = 0.1, si_test_fraction: float = 0.1,
               seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded, class-balanced train / val / si_train / si_test index arrays (sorted int64)."""
    for key, f in (("val_fraction", val_fraction), ("si_fraction", si_fraction),
                   ("si_test_fraction", si_test_fraction)):
        if not 0 < f < 1:
            raise ValueError(f"data.{key} must lie strictly between 0 and 1, got {f}")
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    labels = np.unique(y_train)
    if not np.array_equal(np.unique(y_test), labels):
        raise ValueError(f"the test set has classes {np.unique(y_test).tolist()}, "
                         f"the training set {labels.tolist()}")
    rng = np.random.default_rng(seed)
    everything = np.arange(len(y_train), dtype=np.int64)

    val = _balanced(rng, everything, y_train, labels, val_fraction * len(y_train),
                    "data.val_fraction", "official training set")
    train = np.setdiff1d(everything, val)
    # SI subset sized on the official training set, but drawn from train only (never val)
    si_train = _balanced(rng, train, y_train, labels, si_fraction * len(y_train),
                         "data.si_fraction", "training subset")
    si_test = _balanced(rng, np.arange(len(y_test), dtype=np.int64), y_test, labels,
                        si_test_fraction * len(y_test), "data.si_test_fraction", "test set")
    return {"train": train, "val": val, "si_train": si_train, "si_test": si_test}


def _balanced(rng: np.random.Generator, pool: np.ndarray, y: np.ndarray, labels: np.ndarray,
              size: float, key: str, what: str) -> np.ndarray:
    """`round(size)` indices drawn from `pool`, the same number from every class."""
    n, k = int(round(size)), len(labels)
    if n < k or n % k:
        raise ValueError(f"{key} gives {n} images, which is not a positive multiple of the "
                         f"{k} classes (class-balanced subsets need equal counts per class)")
    per = n // k
    picks = []
    for c in labels:
        members = pool[y[pool] == c]
        if len(members) < per:
            raise ValueError(f"{key} asks for {per} images of class {c}, but the {what} "
                             f"has only {len(members)}")
        picks.append(rng.choice(members, size=per, replace=False))
    return np.sort(np.concatenate(picks)).astype(np.int64)


# ----------------------------------------------------------------------------------------
# Summary and normalisation statistics


def split_summary(x_train: np.ndarray, y_train: np.ndarray, y_test: np.ndarray,
                  split: dict[str, np.ndarray], classes: list[str]) -> dict:
    """Counts per class per subset, totals, and the per-channel mean / std of `train`."""
    labels_of = {"train": y_train, "val": y_train, "si_train": y_train, "si_test": y_test}
    per_class = {}
    for name in SUBSETS:
        counts = np.bincount(labels_of[name][split[name]], minlength=len(classes))
        per_class[name] = {c: int(n) for c, n in zip(classes, counts)}
    mean, std = channel_stats(x_train, split["train"])
    return {
        "classes": list(classes),
        "n_official_train": int(len(y_train)),
        "n_official_test": int(len(y_test)),
        "totals": {name: int(len(split[name])) for name in SUBSETS},
        "per_class": per_class,
        "train_mean": mean,
        "train_std": std,
    }


def channel_stats(x: np.ndarray, idx: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of x[idx] on the [0, 1] scale.

    Sums of uint8 pixels and of their squares are exact in int64, so the chunked statistics
    equal a float64 computation over the whole subset at once.
    """
    n_pix = len(idx) * x.shape[1] * x.shape[2]
    if n_pix == 0:
        raise ValueError("cannot compute channel statistics of an empty subset")
    s = np.zeros(x.shape[3], dtype=np.int64)
    ss = np.zeros(x.shape[3], dtype=np.int64)
    for start in range(0, len(idx), STATS_CHUNK):
        chunk = x[idx[start:start + STATS_CHUNK]].astype(np.int64)  # (B, H, W, C)
        s += chunk.sum(axis=(0, 1, 2))
        ss += (chunk * chunk).sum(axis=(0, 1, 2))
    mean = s / (n_pix * 255.0)
    # n^2 var = n*ss - s^2, exact in Python integers, then one rounding to float64
    var = np.array([(n_pix * int(b) - int(a) ** 2) / n_pix ** 2 for a, b in zip(s, ss)])
    std = np.sqrt(var) / 255.0
    return mean.tolist(), std.tolist()


# ----------------------------------------------------------------------------------------
# Files


def write_split(data_npz: str | Path, out_npz: str | Path, out_summary: str | Path, *,
                val_fraction: float, si_fraction: float, si_test_fraction: float, seed: int,
                log: Callable[[str], None] = print) -> dict:
    """Split the data set in `data_npz`; write split.npz and summary.json; return the summary."""
    ds = load_dataset(data_npz)
    log(f"loaded {data_npz}: {len(ds.y_train)} train / {len(ds.y_test)} test images, "
        f"{len(ds.classes)} classes")
    split = make_split(ds.y_train, ds.y_test, val_fraction=val_fraction, si_fraction=si_fraction,
                       si_test_fraction=si_test_fraction, seed=seed)
    settings = {"val_fraction": val_fraction, "si_fraction": si_fraction,
                "si_test_fraction": si_test_fraction, "seed": seed, "data": str(data_npz)}
    summary = {
        "val_fraction": val_fraction,
        "si_fraction": si_fraction,
        "si_test_fraction": si_test_fraction,
        "seed": seed,
        **split_summary(ds.x_train, ds.y_train, ds.y_test, split, ds.classes),
        "provenance": provenance(seed=seed, settings=settings),
    }
    with atomic_path(out_npz) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **split)
    write_json(out_summary, summary)
    log("split sizes: " + ", ".join(f"{k} {v}" for k, v in summary["totals"].items()))
    log("train mean " + ", ".join(f"{v:.4f}" for v in summary["train_mean"])
        + "; std " + ", ".join(f"{v:.4f}" for v in summary["train_std"]))
    return summary


def load_split(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} does not exist "
                                "(it is written by the split rule)")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in SUBSETS if k not in z.files]
        if missing:
            raise ValueError(f"split file {path} lacks the key(s) {', '.join(missing)}")
        return {k: z[k].astype(np.int64) for k in SUBSETS}


def load_summary(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split summary {path} does not exist "
                                "(it is written by the split rule)")
    return read_json(path)


# ----------------------------------------------------------------------------------------
# The study's subsets as tensors


@dataclass
class StudyData:
    train: Pair
    val: Pair
    test: Pair
    classes: list[str]
    mean: list[float]
    std: list[float]


def load_study_data(data_npz: str | Path, split_npz: str | Path, summary_json: str | Path,
                    device: torch.device) -> StudyData:
    """Train / val / test subsets as uint8 (N, 3, 32, 32) tensors on `device`."""
    ds = load_dataset(data_npz)
    split = load_split(split_npz)
    summary = load_summary(summary_json)

    def pair(x: np.ndarray, y: np.ndarray, idx: np.ndarray | None = None) -> Pair:
        if idx is not None:
            x, y = x[idx], y[idx]
        return to_device_images(x, device), torch.as_tensor(y, dtype=torch.long, device=device)

    return StudyData(
        train=pair(ds.x_train, ds.y_train, split["train"]),
        val=pair(ds.x_train, ds.y_train, split["val"]),
        test=pair(ds.x_test, ds.y_test),
        classes=list(ds.classes),
        mean=list(summary["train_mean"]),
        std=list(summary["train_std"]),
    )
