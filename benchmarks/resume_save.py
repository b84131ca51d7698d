"""What the per-epoch resumable state costs the training: written in place (the baseline)
against written by the background writer while the next epoch trains.

    python benchmarks/resume_save.py --width 1 --rounds 3 --epochs 5 --epoch-seconds 1.5

The model is VGG16 at the given width with the study's classifier, an SGD optimizer with its
momentum buffers filled and a best-epoch copy, as in a real training. Each "epoch" is
simulated by a fixed number of matrix products on the training device (about
`--epoch-seconds`), so the background write competes with real work. Blocks of consecutive
epochs without any state, with the state written inline and with the background writer
alternate (each block ends by waiting for its last write, as a training does); prints the
seconds per epoch of each, the overhead of each way and their ratio. The state is the same bytes either
way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from sicompress.artifacts import save_torch
from sicompress.devices import pick_device
from sicompress.model import build_model
from sicompress.networks import vgg_arch
from sicompress.engine import BackgroundWriter, _resume_state


def setup(width: float, device: torch.device):
    model = build_model(vgg_arch(width, [512, 512], 0.5, 10, [0.5] * 3, [0.25] * 3)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, device=device)
    torch.nn.functional.cross_entropy(model(x), torch.zeros(8, dtype=torch.long, device=device)).backward()
    opt.step()
    sched = torch.optim.lr_scheduler.StepLR(opt, 30)
    best = {"epoch": 1, "acc": 0.5, "loss": 1.0,
            "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}}
    return model, opt, sched, best


def work(steps: int, device: torch.device) -> None:
    """A fixed amount of device work, as an epoch of training would be."""
    a = torch.randn(512, 512, device=device)
    for _ in range(steps):
        a = torch.tanh(a @ a.T / 512)
    if device.type == "cuda":
        torch.cuda.synchronize()


def calibrate(seconds: float, device: torch.device) -> int:
    """Steps of `work` that take about `seconds`."""
    work(8, device)
    t0 = time.perf_counter()
    work(64, device)
    per_step = (time.perf_counter() - t0) / 64
    return max(1, int(seconds / per_step))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=5, help="epochs per block")
    ap.add_argument("--rounds", type=int, default=3, help="blocks of each way, alternating")
    ap.add_argument("--epoch-seconds", type=float, default=2.0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
    a = ap.parse_args()
    device = pick_device(a.device)
    model, opt, sched, best = setup(a.width, device)
    folder = Path(a.dir or tempfile.mkdtemp(prefix="resume-bench-"))
    path = folder / "resume.pt"
    ident = {"settings": {}}

    def state(epoch):
        return _resume_state(ident, epoch, model, opt, sched, device, [], best, 0.0)

    steps = calibrate(a.epoch_seconds, device)
    times = {"no state": [], "inline": [], "background": []}  # seconds per epoch, per block
    for _ in range(a.rounds):
        for mode, seconds in times.items():  # blocks of consecutive epochs, modes alternating
            writer = BackgroundWriter()
            t0 = time.perf_counter()
            for epoch in range(1, a.epochs + 1):
                work(steps, device)  # with the background writer, the last write runs meanwhile
                if mode == "inline":
                    save_torch(path, state(epoch))
                elif mode == "background":
                    writer.submit(path, state(epoch))
            writer.close()  # as fit() does at its end: counted
            seconds.append((time.perf_counter() - t0) / a.epochs)
    size = os.path.getsize(path) / 1e6
    if a.dir is None:
        shutil.rmtree(folder)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{name}; VGG16 width {a.width}; resumable state {size:.0f} MB; {a.rounds} rounds of "
          f"{a.epochs} epochs of about {a.epoch_seconds:g} s of work; seconds per epoch")
    print("round  " + "  ".join(f"{m:>10}" for m in times))
    for i in range(a.rounds):
        print(f"{i + 1:>5}  " + "  ".join(f"{times[m][i]:10.3f}" for m in times))
    mean = {m: sum(v) / len(v) for m, v in times.items()}
    print("mean   " + "  ".join(f"{mean[m]:10.3f}" for m in times))
    base = mean["no state"]
    print(f"save overhead per epoch: inline {mean['inline'] - base:+.3f} s "
          f"({100 * (mean['inline'] / base - 1):+.0f}%), background {mean['background'] - base:+.3f} s "
          f"({100 * (mean['background'] / base - 1):+.0f}%); epochs {mean['inline'] / mean['background']:.2f}x "
          f"faster with the background writer than inline")

if __name__ == "__main__":
    main()
