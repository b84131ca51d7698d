"""How long a trained model takes per image: measured, not inferred from parameters or MACs.

Every model is timed on the same real test images (uint8, as the models take them), in eval
mode without gradient, on one device, with `torch.utils.benchmark.Timer`, which synchronises
CUDA and reports the median over blocks of runs. Before it, a few forward passes warm up
(allocator, cuDNN algorithm choice, caches). The models are measured one after another in
one process, so they share the device, the threads and the load; the rule gives the job the
whole machine, so no other job of the workflow runs beside it.

The models run as the trainings evaluate them under the compute settings
(`engine.forward_format`): on CUDA under bf16 autocast (entered for every forward pass, as
`engine.evaluate` does for every batch) and in channels_last, as config["compute"] says; on
the CPU in float32. The table states it in `precision`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from . import artifacts
from .cost import macs_per_image, parameter_counts
from .data import load_dataset
from .devices import pick_device
from .model import load_model
from .engine import ForwardFormat, forward_format, settings_from_config, to_device_images

BATCH_SIZES = (1, 256)
MIN_RUN_TIME = 1.0  # seconds of timed runs per (model, batch size), after warm-up
WARMUP_RUNS = 3
COLUMNS = ["model", "batch_size", "seconds_per_image", "iqr_seconds_per_image", "measurements",
           "parameters", "macs", "device", "threads", "precision"]
FLOAT32 = ForwardFormat(bf16=False, channels_last=False)


def timing_format(compute: Mapping | None, device: str | torch.device) -> ForwardFormat:
    """How the models are timed on `device`: as the trainings evaluate them under the compute
    settings (config["compute"]; a key not given takes the trainings' default)."""
    s = settings_from_config({}, 0, compute=dict(compute or {}))
    return forward_format(device, bf16=s.bf16, channels_last=s.channels_last)


def time_forward(model: torch.nn.Module, images: torch.Tensor, *, fmt: ForwardFormat = FLOAT32,
                 min_run_time: float = MIN_RUN_TIME, warmup: int = WARMUP_RUNS) -> dict:
    """Median and interquartile range of one forward pass of `images` (a batch on the model's
    device) in the format `fmt`, in seconds, after `warmup` untimed passes. With
    fmt.channels_last the model is converted in place. -> {"median", "iqr", "measurements"}."""
    model.eval()
    if fmt.channels_last:
        model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)

    def forward():
        # autocast entered per pass, as evaluate does per batch: its cache of bf16 weights
        # lasts one pass, so every timed pass casts the weights, as every evaluated batch does
        with fmt.autocast(images.device):
            return model(images)

    with torch.no_grad():
        for _ in range(warmup):
            forward()
        if images.device.type == "cuda":
            torch.cuda.synchronize(images.device)
        # imported here: torch.utils.benchmark brings in cpp_extension, whose warning about a
        # missing CUDA runtime would otherwise open the log of every job on a CPU machine
        from torch.utils.benchmark import Timer

        timer = Timer(stmt="forward()", globals={"forward": forward},
                                num_threads=torch.get_num_threads())
        m = timer.blocked_autorange(min_run_time=min_run_time)
    return {"median": float(m.median), "iqr": float(m.iqr), "measurements": len(m.times)}


def measure_latency(models: Mapping[str, str | Path], data_npz, out_csv, *,
                    batch_sizes: Sequence[int] = BATCH_SIZES, min_run_time: float = MIN_RUN_TIME,
                    device: str | None = None, compute: Mapping | None = None,
                    log: Callable[[str], None] = print) -> pd.DataFrame:
    """Seconds per image of every model (name -> model.pt) at every batch size, each run as
    the trainings evaluate it under `compute` (config["compute"]: `timing_format`); writes a
    CSV of COLUMNS (one row per model and batch size) and returns it."""
    dev = pick_device(device, log=log)
    fmt = timing_format(compute, dev)
    log(f"timed in {fmt.precision} on {dev}, as the trainings evaluate the models")
    x_test = load_dataset(data_npz).x_test
    biggest = max(batch_sizes)
    if len(x_test) == 0:
        raise ValueError(f"{data_npz}: no test images to time the models on")
    if len(x_test) < biggest:  # a small (test) data set: its images again, the time is the same
        log(f"{len(x_test)} test images, fewer than the batch of {biggest}: they are repeated")
        x_test = np.concatenate([x_test] * -(-biggest // len(x_test)))
    images = to_device_images(x_test[:biggest], dev)
    threads = torch.get_num_threads()
    rows = []
    for name, path in models.items():
        model = load_model(path, map_location=dev)
        params = parameter_counts(model)["total"]
        macs = macs_per_image(model.arch)["total"]
        for b in batch_sizes:
            t = time_forward(model, images[:b], fmt=fmt, min_run_time=min_run_time)
            rows.append({"model": name, "batch_size": b, "seconds_per_image": t["median"] / b,
                         "iqr_seconds_per_image": t["iqr"] / b,
                         "measurements": t["measurements"], "parameters": params, "macs": macs,
                         "device": str(dev), "threads": threads, "precision": fmt.precision})
            log(f"{name}: batch {b}: {1e3 * t['median'] / b:.4f} ms per image "
                f"(median of {t['measurements']}, IQR {1e3 * t['iqr'] / b:.4f} ms)")
        del model
    table = pd.DataFrame(rows, columns=COLUMNS)
    with artifacts.atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    return table


def speedups(table: pd.DataFrame, reference: str = "e2e") -> pd.DataFrame:
    """The latency table with `speedup`: the reference model's seconds per image over each
    model's, at the same batch size."""
    ref = table[table["model"] == reference].set_index("batch_size")["seconds_per_image"]
    if ref.empty:
        raise ValueError(f"the latency table has no {reference!r} rows")
    out = table.copy()
    out["speedup"] = out["batch_size"].map(ref) / out["seconds_per_image"]
    return out


__all__ = ["BATCH_SIZES", "COLUMNS", "measure_latency", "speedups", "time_forward",
           "timing_format"]
