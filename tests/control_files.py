"""Small fabricated files of the control trainings (metrics.json, predictions.npz, model.pt),
as the trainings write them, for the tests of the controls' summary and report."""

import json
from pathlib import Path

import numpy as np
import torch

from sicompress.networks import vgg_arch

WIDTH = 1 / 16  # 4 .. 32 channels: a tiny arch whose MACs the summary counts
LABELS = np.arange(40, dtype=np.int64) % 10  # the "test set": 40 images, 4 per class


def arch() -> dict:
    return vgg_arch(width=WIDTH, hidden=[8], dropout=0.0)


def predictions_with(correct: np.ndarray, labels: np.ndarray = LABELS) -> np.ndarray:
    """Predicted classes that are right exactly where `correct` is True."""
    return np.where(correct, labels, (labels + 1) % 10).astype(np.int64)


def write_training(folder: Path, *, test_acc: float | None = None, correct=None,
                   parameters: int = 1000, macs: int | None = None, compression: dict | None = None,
                   labels: np.ndarray = LABELS, model: bool = False, seed: int = 0) -> dict:
    """metrics.json and predictions.npz (and model.pt with `model`) in `folder`; -> the paths.
    `correct` (bool per image) gives the predictions, test_acc defaults to its mean; without
    `correct`, the first round(test_acc * N) images are right (all with neither)."""
    folder.mkdir(parents=True, exist_ok=True)
    if correct is None:
        correct = np.arange(labels.size) < round((1.0 if test_acc is None else test_acc) * labels.size)
    correct = np.asarray(correct, bool)
    metrics = {"test_acc": float(correct.mean()) if test_acc is None else test_acc,
               "val_acc": 0.5, "train_seconds": 1.0,
               "parameters": {"features": parameters // 2, "classifier": parameters - parameters // 2,
                              "total": parameters}}
    if macs is not None:
        metrics["macs"] = {"features": macs - 10, "classifier": 10, "total": macs}
    if compression is not None:
        metrics["compression"] = compression
    # as every training records it: the seed of its classifier, batch order and dropout
    metrics["provenance"] = {"seed": (compression or {}).get("seed", seed)}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    np.savez(folder / "predictions.npz", label=labels.astype(np.int64),
             predicted=predictions_with(correct, labels))
    paths = {"metrics": folder / "metrics.json", "predictions": folder / "predictions.npz",
             "model": folder / "model.pt"}
    if model:
        torch.save({"arch": arch(), "state_dict": {}}, folder / "model.pt")
    return paths


def write_run(root: Path, group: str, selector: str, repeat: int, *, fraction=None, k: int = 4,
              test_acc: float = 0.8, correct=None, n_candidates: int = 32) -> dict:
    """One control training's files and its run record (as the workflow lists it)."""
    name = f"{group}/{selector}/{'chosen' if fraction is None else fraction}/r{repeat}"
    paths = write_training(
        root / name, test_acc=test_acc, correct=correct, parameters=100 * k + 7,
        macs=1000 * k + 5,
        compression={"cut_layer": "conv4_3", "unit": "channel", "k": k,
                     "n_candidates": n_candidates, "selector": selector, "fraction": fraction,
                     "repeat": repeat, "seed": 100 + repeat, "kept": list(range(k))})
    return {"group": group, "selector": selector, "fraction": fraction, "repeat": repeat, **paths}
