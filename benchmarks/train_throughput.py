"""Training throughput: the project's engine against a baseline written the common way.

    python benchmarks/train_throughput.py --width 0.25 --rounds 2             # 2 CPU cores
    python benchmarks/train_throughput.py --width 1 --rounds 2 --compile      # one GPU
    python benchmarks/train_throughput.py --width 0.0625 --limit 1000 --rounds 1   # a quick check

Both sides train the same VGG16 (`build_model(vgg_arch(width))`, same seed, so the same
initial weights) for one epoch of the official CIFAR-10 training set (all 50,000 images, or
the first --limit), batch 128, SGD (lr 0.05, momentum 0.9, weight decay 5e-4), random crop of
the 4-px zero-padded image and horizontal flip, on the same machine:

- engine: `sicompress.engine.fit` for one epoch: uint8 images on the device, augmented per
  batch there; on CUDA bf16 autocast (--no-bf16: fp32) and channels_last, as in the study.
  Its time is the epoch's `seconds` from the history, which also holds a validation pass on
  one batch (the first 128 test images: negligible) and a copy of the weights to the CPU.
  Copying the images to the device, once per training, is reported apart ("upload").
- baseline: what torchvision.datasets.CIFAR10 does (uint8 array, `Image.fromarray` per item)
  with transforms RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize, a
  DataLoader (shuffle, --workers worker processes, pin_memory on CUDA, workers started anew
  each epoch) and a plain fp32 loop (PyTorch's defaults: cuDNN may use TF32 for the
  convolutions on GPUs that have it). Its time is the wall time of the epoch, worker
  start-up and data loading included. The model's own Normalize is replaced by the
  identity, since the transforms normalise.

Rounds alternate (engine, [engine with torch.compile], baseline, engine, ...); each round
builds its model afresh. Images/s = images of the epoch / seconds of the epoch; the best
(fastest) round of each side is reported, every round is listed. With --compile, round 1 of
"engine+compile" includes the compilation: use 2 rounds or more. The archive is decoded once
(seconds reported apart, not in any throughput); --data may also name the npz of
`sicompress.data.prepare_data`. Prints the table and the ratio engine / baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from sicompress import data as sicdata
from sicompress.model import build_model
from sicompress.networks import vgg_arch
from sicompress.splits import channel_stats
from sicompress.devices import pick_device
from sicompress.engine import TrainSettings, fit, to_device_images

LR, MOMENTUM, WEIGHT_DECAY, PAD = 0.05, 0.9, 5e-4, 4
VAL_IMAGES = 128  # the engine's validation set: one batch of test images


# ----------------------------------------------------------------------------------------
# Data and devices (layer_si.py and e2e_check.py use these too)


def load_data(path: str) -> tuple[sicdata.Dataset, float]:
    """(Dataset, seconds to decode): an npz as written by prepare_data, else a folder or
    archive decoded once into a temporary npz."""
    if path.endswith(".npz"):
        return sicdata.load_dataset(path), 0.0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sicdata.prepare_data("folder", path, Path(tmp) / "data.npz")
        ds = sicdata.load_dataset(Path(tmp) / "data.npz")
    return ds, time.perf_counter() - t0


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return models[0] if models else platform.machine()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------
# Engine


def engine_epoch(arch: dict, train: tuple, val: tuple, seed: int, batch: int, bf16: bool,
                 compile_model: bool) -> tuple[float, float]:
    """-> (seconds of the epoch from the history, seconds of the whole fit call)."""
    torch.manual_seed(seed)
    model = build_model(arch)
    settings = TrainSettings(epochs=1, lr=LR, step_size=1, momentum=MOMENTUM,
                             weight_decay=WEIGHT_DECAY, batch_size=batch, augment=True, pad=PAD,
                             seed=seed, bf16=bf16, compile=compile_model)
    t0 = time.perf_counter()
    result = fit(model, train, val, settings, log=lambda line: print("   ", line))
    return float(result.history["seconds"].iloc[0]), time.perf_counter() - t0


# ----------------------------------------------------------------------------------------
# Baseline


class CIFARLike(Dataset):
    """torchvision.datasets.CIFAR10's item: uint8 (32, 32, 3) -> PIL image -> transform."""

    def __init__(self, x: np.ndarray, y: np.ndarray, transform):
        self.x, self.y, self.transform = x, y.tolist(), transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.x[i])), self.y[i]


def baseline_epoch(arch: dict, x: np.ndarray, y: np.ndarray, device: torch.device, seed: int,
                   batch: int, workers: int) -> float:
    """-> wall seconds of one fp32 epoch, worker start-up and data loading included."""
    torch.manual_seed(seed)
    model = build_model(arch)
    model.normalize = nn.Identity()  # transforms.Normalize does it in the workers
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    tf = transforms.Compose([
        transforms.RandomCrop(32, padding=PAD),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(arch["mean"], arch["std"]),
    ])
    loader = DataLoader(CIFARLike(x, y, tf), batch_size=batch, shuffle=True, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=False,
                        generator=torch.Generator().manual_seed(seed))
    sync(device)
    t0 = time.perf_counter()
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)  # waits for the last step
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("CIFAR10_JPEG"),
                   help="CIFAR-10 folder or .tar(.gz) (train/<class>/*, test/<class>/*), or the npz "
                        "of prepare_data (default: $CIFAR10_JPEG)")
    p.add_argument("--width", type=float, default=0.25, help="VGG16 channel multiplier")
    p.add_argument("--batch", type=int, default=128, help="images per SGD step")
    p.add_argument("--rounds", type=int, default=2, help="alternating epochs of each side")
    p.add_argument("--limit", type=int, default=None,
                   help="train on the first N images of the official training set only (default: all)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the baseline")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when present)")
    p.add_argument("--compile", action="store_true", help="also time the engine with torch.compile")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="the engine's bf16 autocast on CUDA (the baseline is fp32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, batch order and augmentation")
    p.add_argument("--out", default=None, help="write the figures: .json (all) or .csv (the rounds)")
    a = p.parse_args(argv)
    if not a.data:
        p.error("--data is required when $CIFAR10_JPEG is not set")

    device = pick_device(a.device)
    ds, decode_s = load_data(a.data)
    x, y = ds.x_train[:a.limit], ds.y_train[:a.limit]  # (N, 32, 32, 3) uint8, (N,)
    n = len(y)
    mean, std = channel_stats(x, np.arange(n))
    arch = vgg_arch(a.width, num_classes=len(ds.classes), mean=mean, std=std)
    name = device_name(device)
    print(f"{n} training images, width {a.width}, batch {a.batch}, device {device} ({name}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"baseline workers {a.workers}, engine bf16 {a.bf16 and device.type == 'cuda'}")
    print(f"decode {decode_s:.1f} s (once, not in any figure below)")

    sync(device)
    t0 = time.perf_counter()
    train = (to_device_images(x, device), torch.as_tensor(y, dtype=torch.long, device=device))
    val = (to_device_images(ds.x_test[:VAL_IMAGES], device),
           torch.as_tensor(ds.y_test[:VAL_IMAGES], dtype=torch.long, device=device))
    sync(device)
    upload_s = time.perf_counter() - t0
    print(f"engine upload of the images to {device}: {upload_s:.2f} s (once per training)")

    sides = ["engine"] + (["engine+compile"] if a.compile else []) + ["baseline"]
    rows = []
    for r in range(1, a.rounds + 1):
        for side in sides:
            print(f"round {r}: {side}")
            fit_s = None
            if side == "baseline":
                secs = baseline_epoch(arch, x, y, device, a.seed, a.batch, a.workers)
            else:
                secs, fit_s = engine_epoch(arch, train, val, a.seed, a.batch, a.bf16,
                                           side == "engine+compile")
            rows.append({"side": side, "round": r, "seconds": secs, "fit_seconds": fit_s,
                         "images": n, "images_per_s": n / secs})
            print(f"    {secs:.2f} s, {n / secs:.0f} images/s")
    table = pd.DataFrame(rows)

    best = table.groupby("side", sort=False)["images_per_s"].max()
    print(f"\none epoch of {n} images, VGG16 width {a.width}, batch {a.batch}, {device} ({name}); "
          f"best of {a.rounds} round(s)")
    print(f"{'side':<16}{'seconds per round':>28}{'best images/s':>16}")
    for side in sides:
        secs = "  ".join(f"{s:8.2f}" for s in table.loc[table.side == side, "seconds"])
        print(f"{side:<16}{secs:>28}{best[side]:16.0f}")
    engine_fit = table.loc[table.side == "engine", "fit_seconds"].min()
    print(f"(engine: epoch seconds from its history, validation on {VAL_IMAGES} images included; "
          f"whole fit call {engine_fit:.2f} s at best; upload {upload_s:.2f} s)")
    ratios = {side: best[side] / best["baseline"] for side in sides if side != "baseline"}
    for side, ratio in ratios.items():
        print(f"ratio {side}/baseline: {ratio:.2f}x images/s")

    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".json":
            out.write_text(json.dumps({
                "images": n, "width": a.width, "batch": a.batch, "device": str(device),
                "device_name": name, "torch": torch.__version__, "threads": torch.get_num_threads(),
                "cpus": os.cpu_count(), "workers": a.workers,
                "engine_bf16": a.bf16 and device.type == "cuda", "decode_seconds": decode_s,
                "upload_seconds": upload_s, "rounds": rows, "best_images_per_s": best.to_dict(),
                "ratio_to_baseline": ratios}, indent=2))
        else:
            table.assign(width=a.width, batch=a.batch, device=name).to_csv(out, index=False)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
