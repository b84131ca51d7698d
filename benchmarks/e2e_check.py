"""A bounded end-to-end training of VGG16 on the real CIFAR-10, with its test accuracy.

    python benchmarks/e2e_check.py --width 1 --epochs 30                      # one GPU
    python benchmarks/e2e_check.py --width 0.0625 --epochs 1 --limit 2000     # a quick check

The study's recipe at a fixed length: the split of `sicompress.splits.make_split` (seed 0:
train 45,000 and val 5,000 of the official training set), inputs normalised with the mean
and std of train, VGG16 at --width with the study's classifier (512, 512, dropout 0.5),
trained by `sicompress.engine.fit` (SGD, momentum 0.9, weight decay 5e-4, batch 128,
random crop and flip, StepLR x0.1 every --step epochs, bf16 autocast and channels_last on
CUDA). The weights of the epoch with the best validation accuracy are tested once on the
official test set (10,000 images).

Prints the test accuracy, the training seconds and images per second: over the whole fit
(first-epoch warm-up, or compilation with --compile, included) and at the median epoch after
the first, with the time 200 epochs would take at that pace. Epoch seconds include the
validation pass. --limit N keeps N images of each of train, val and test, spread evenly over
each (the official sets are ordered by class), for a quick check.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from sicompress.cost import parameter_counts
from sicompress.model import build_model
from sicompress.networks import vgg_arch
from sicompress.splits import channel_stats, make_split
from sicompress.devices import pick_device
from sicompress.engine import TrainSettings, evaluate, fit, to_device_images
# a script beside this one: benchmarks/ is on sys.path when a script here runs
from train_throughput import device_name, load_data

STUDY_EPOCHS = 200  # the study's e2e length, for the projection


def spread(idx: np.ndarray, limit: int | None) -> np.ndarray:
    """`limit` entries of idx at evenly spaced positions (all of idx without a limit)."""
    if limit is None or limit >= len(idx):
        return idx
    return idx[np.linspace(0, len(idx) - 1, limit).round().astype(int)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("CIFAR10_JPEG"),
                   help="CIFAR-10 folder or .tar(.gz) (train/<class>/*, test/<class>/*), or the npz "
                        "of prepare_data (default: $CIFAR10_JPEG)")
    p.add_argument("--width", type=float, default=1.0, help="VGG16 channel multiplier")
    p.add_argument("--epochs", type=int, default=30, help="training epochs")
    p.add_argument("--lr", type=float, default=0.05, help="initial learning rate")
    p.add_argument("--step", type=int, default=15, help="StepLR step, in epochs")
    p.add_argument("--batch", type=int, default=128, help="images per SGD step")
    p.add_argument("--limit", type=int, default=None,
                   help="N images of each of train, val and test (default: all)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when present)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 autocast on CUDA")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, weights and batches")
    p.add_argument("--out", default=None, help="JSON of the figures and the history")
    a = p.parse_args(argv)
    if not a.data:
        p.error("--data is required when $CIFAR10_JPEG is not set")

    device = pick_device(a.device)
    ds, decode_s = load_data(a.data)
    split = make_split(ds.y_train, ds.y_test, seed=a.seed)
    tr, va = spread(split["train"], a.limit), spread(split["val"], a.limit)
    te = spread(np.arange(len(ds.y_test)), a.limit)
    mean, std = channel_stats(ds.x_train, tr)

    def pair(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return to_device_images(x[idx], device), torch.as_tensor(y[idx], dtype=torch.long, device=device)

    train, val = pair(ds.x_train, ds.y_train, tr), pair(ds.x_train, ds.y_train, va)
    test = pair(ds.x_test, ds.y_test, te)
    torch.manual_seed(a.seed)
    model = build_model(vgg_arch(a.width, num_classes=len(ds.classes), mean=mean, std=std))
    settings = TrainSettings(epochs=a.epochs, lr=a.lr, step_size=a.step, batch_size=a.batch,
                             seed=a.seed, bf16=a.bf16, compile=a.compile)
    name = device_name(device)
    print(f"VGG16 width {a.width}, {parameter_counts(model)['total']} parameters; train "
          f"{len(tr)} / val {len(va)} / test {len(te)} images; {a.epochs} epochs, lr {a.lr:g}, "
          f"step {a.step}, batch {a.batch}, bf16 {a.bf16 and device.type == 'cuda'}, compile "
          f"{a.compile}; device {device} ({name}), torch {torch.__version__}; "
          f"decode {decode_s:.1f} s")

    result = fit(model, train, val, settings)
    model.load_state_dict(result.best_state)
    test_loss, test_acc = evaluate(model, *test, batch_size=settings.eval_batch_size, bf16=a.bf16)

    secs = result.history["seconds"].to_numpy()
    images_per_s = len(tr) * len(secs) / result.seconds
    steady_s = float(np.median(secs[1:])) if len(secs) > 1 else float(secs[0])
    figures = {
        "width": a.width, "epochs": a.epochs, "lr": a.lr, "step": a.step, "batch": a.batch,
        "bf16": a.bf16 and device.type == "cuda", "compile": a.compile, "device": name,
        "torch": torch.__version__, "n_train": len(tr), "n_val": len(va), "n_test": len(te),
        "decode_seconds": decode_s, "fit_seconds": result.seconds, "best_epoch": result.best_epoch,
        "val_acc": result.best_val_acc, "test_acc": test_acc, "test_loss": test_loss,
        "images_per_s": images_per_s, "steady_epoch_seconds": steady_s,
        "steady_images_per_s": len(tr) / steady_s,
        "projected_study_minutes": STUDY_EPOCHS * steady_s / 60,
        "diverged": result.diverged, "history": result.history.to_dict(orient="records"),
    }
    print(f"\nbest epoch {result.best_epoch}/{a.epochs}: val acc {100 * result.best_val_acc:.2f}%, "
          f"test acc {100 * test_acc:.2f}% (loss {test_loss:.4f}) on {len(te)} test images")
    print(f"fit {result.seconds:.1f} s for {a.epochs} epochs of {len(tr)} images: "
          f"{images_per_s:.0f} images/s overall; median epoch after the first {steady_s:.2f} s = "
          f"{len(tr) / steady_s:.0f} images/s; {STUDY_EPOCHS} epochs of {len(tr)} images at that pace: "
          f"{figures['projected_study_minutes']:.1f} min")
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
