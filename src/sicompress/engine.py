"""The training engine: one function, `fit`, serves every training of the study.

The images live as uint8 tensors on the training device; each batch is cropped, flipped and
normalised there, so there are no DataLoader workers and no per-image Python. SGD with
momentum, weight decay and StepLR, cross-entropy loss; the weights of the epoch with the best
validation accuracy are kept. Randomness is drawn from a generator seeded by (seed, epoch), so
the same seed gives the same history on CPU.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .artifacts import fingerprint, save_torch


# ----------------------------------------------------------------------------------------
# Settings (defaults are the study's; units in comments)


@dataclass
class TrainSettings:
    epochs: int = 200              # full passes over the training subset
    lr: float = 0.05               # initial learning rate
    step_size: int = 50            # StepLR step, in epochs
    gamma: float = 0.1             # StepLR factor
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128          # images per SGD step
    eval_batch_size: int = 1000    # images per forward pass when evaluating
    augment: bool = True           # random 32x32 crop of the 4-px zero-padded image + h-flip
    pad: int = 4                   # crop padding, pixels
    seed: int = 0
    train_only: str = "all"        # "all" or "classifier" (features frozen, BatchNorm in eval)
    inputs: str = "images"         # "images": uint8 images through the model; "features": the
                                   #   frozen extractor's outputs, computed once (feature_cache),
                                   #   fed to the classifier alone (no augmentation)
    # Compute settings (config["compute"]): how fast a result comes, not what it is
    bf16: bool = True              # bf16 autocast (CUDA only)
    channels_last: bool = True     # memory format (CUDA only)
    compile: bool = False          # torch.compile the model
    resume_every: float = 0.0      # seconds between resumable states; 0 = after every epoch

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.step_size < 1:
            raise ValueError(f"step_size must be >= 1 epoch, got {self.step_size}")
        if self.train_only not in ("all", "classifier"):
            raise ValueError(f"train_only must be 'all' or 'classifier', got {self.train_only!r}")
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {self.inputs!r}")
        if self.inputs == "features" and (self.augment or self.train_only != "classifier"):
            raise ValueError("inputs 'features' (a frozen extractor's cached outputs) trains the "
                             "classifier only, without augmentation: set train_only "
                             "'classifier' and augment False")
        if not self.resume_every >= 0:
            raise ValueError(f"resume_every must be >= 0 seconds, got {self.resume_every}")


INPUTS = ("images", "features")


# Fields of TrainSettings that change how fast a training runs, not what it learns (bf16 changes
# the numbers on CUDA a little, as another GPU would, not what they mean): a resumable state
# written under other values of these is still resumed.
COMPUTE_FIELDS = ("bf16", "channels_last", "compile", "resume_every")


PROGRESS_EVERY_S = 60.0  # a progress line at least this often within a long epoch, seconds

# seconds: the whole epoch (training and validation); images_per_s: the training pass alone
HISTORY_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds",
                   "images_per_s"]


@dataclass
class FitResult:
    history: pd.DataFrame
    best_state: dict                  # state_dict of the best epoch (CPU tensors)
    best_epoch: int                   # 1-based; 0 when no epoch finished
    best_val_acc: float
    best_val_loss: float
    diverged: bool = False
    diverged_epoch: int | None = None
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)


class DivergedError(RuntimeError):
    """The training loss became non-finite."""


# ----------------------------------------------------------------------------------------
# Device and data


def to_device_images(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N, 32, 32, 3) as stored -> uint8 (N, 3, 32, 32) on `device`."""
    t = torch.as_tensor(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if t.dtype != torch.uint8:
        raise TypeError(f"images must be uint8, got {t.dtype}")
    if t.ndim == 4 and t.shape[-1] == 3 and t.shape[1] != 3:
        t = t.permute(0, 3, 1, 2)
    return t.contiguous().to(device)  # (N, 3, H, W)


def augment_batch(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Random crop of the zero-padded image and random horizontal flip, on x's device.

    x: uint8 (B, C, H, W). Zero padding in pixel space (black border), as in the common
    torchvision RandomCrop(32, padding=4) on PIL images.
    """
    b, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=dev)
    flip = torch.rand(b, generator=gen, device=dev) < 0.5
    rows = oy[:, None] + torch.arange(h, device=dev)  # (B, H)
    cols = ox[:, None] + torch.arange(w, device=dev)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # flipping = reading columns backwards
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, H, W)


# ----------------------------------------------------------------------------------------
# How the forward passes run: precision, memory format, cuDNN's autotuner


@dataclass(frozen=True)
class ForwardFormat:
    """How a model's forward passes run on one device (`forward_format`)."""
    bf16: bool           # under bf16 autocast
    channels_last: bool  # model and images in the channels_last memory format

    @property
    def precision(self) -> str:
        """In words, as the latency table states it: "float32", "bfloat16 autocast",
        "bfloat16 autocast, channels_last", ..."""
        return ("bfloat16 autocast" if self.bf16 else "float32") \
            + (", channels_last" if self.channels_last else "")

    def autocast(self, device: str | torch.device):
        device = torch.device(device)
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=self.bf16)


def forward_format(device: str | torch.device, *, bf16: bool,
                   channels_last: bool = False) -> ForwardFormat:
    """What the compute settings `bf16` and `channels_last` mean on `device`: both are CUDA
    only (on the CPU the models run in float32, in the memory format they are stored in). The
    trainings and their evaluations run so, and the latency table times the models so."""
    cuda = torch.device(device).type == "cuda"
    return ForwardFormat(bf16=bool(bf16) and cuda, channels_last=bool(channels_last) and cuda)


def _autocast(device: torch.device, bf16: bool):
    return forward_format(device, bf16=bf16).autocast(device)


@contextmanager
def cudnn_autotune(device: str | torch.device) -> Iterator[None]:
    """cuDNN's autotuner (`torch.backends.cudnn.benchmark`) on while a training runs on CUDA,
    the previous setting restored after. A training's batches come in a few fixed shapes (the
    batch, the last partial batch, the validation batches), so the fastest algorithm of each
    convolution is searched once per shape and then reused. Only inside the training: SI's
    forward passes (`si.exact_float32`) run afterwards under the setting they found."""
    saved = torch.backends.cudnn.benchmark
    try:
        if torch.device(device).type == "cuda":
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1000,
             bf16: bool = True, channels_last: bool = False, predictions: bool = False):
    """(mean cross-entropy, accuracy) of `model` in eval mode on un-augmented images; with
    `predictions`, also the predicted class of every image ((N,) int64 on x's device), from
    the same forward pass."""
    was_training = model.training
    model.eval()
    device = x.device
    total_loss, correct, predicted = 0.0, 0, []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with _autocast(device, bf16):
            out = model(xb)
        out = out.float()
        total_loss += F.cross_entropy(out, yb, reduction="sum").item()
        pred = out.argmax(1)
        correct += (pred == yb).sum().item()
        if predictions:
            predicted.append(pred)
    model.train(was_training)
    n = max(1, len(x))
    if not predictions:
        return total_loss / n, correct / n
    pred = torch.cat(predicted) if predicted else torch.zeros(0, dtype=torch.long, device=device)
    return total_loss / n, correct / n, pred


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1000,
            bf16: bool = True) -> torch.Tensor:
    """The predicted class (argmax of the logits) of every image, in eval mode: (N,) int64 on
    x's device."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        with _autocast(x.device, bf16):
            out.append(model(x[i:i + batch_size]).float().argmax(1))
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def _set_train_mode(model: nn.Module, train_only: str) -> None:
    model.train()
    if train_only == "classifier":
        model.features.eval()  # frozen means no BatchNorm statistic moves either


# ----------------------------------------------------------------------------------------
# The engine


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    settings: TrainSettings,
    *,
    log: Callable[[str], None] = print,
    stop_on_divergence: bool = True,
    resume: str | Path | None = None,
) -> FitResult:
    """Train `model` in place and return the history and the best epoch's weights.

    `train`/`val` are (uint8 images (N, 3, 32, 32), int64 labels (N,)) already on the training
    device; the model is moved there. With `settings.train_only == "classifier"` the feature
    extractor gets no gradient and stays in eval mode. With `settings.inputs == "features"`,
    `train`/`val` hold a frozen extractor's outputs (`feature_cache`) and `model` is the
    classifier that reads them (`feature_cache.CachedClassifier`): the same loop, order,
    dropout and checkpoints, without the extractor's forward pass. A non-finite training loss stops the
    run: the result says `diverged` (callers decide whether that is an error). On CUDA the
    epochs run with cuDNN's autotuner on (`cudnn_autotune`), as it was again on return.

    resume: a file for the resumable state. At the end of an epoch the model, optimizer,
    scheduler, RNG states, best-so-far and history are copied to the CPU and written there
    atomically, in a background thread while the next epoch trains (at width 1 the state is
    about 180 MB). It is written at the end of the first epoch that ends at least
    `settings.resume_every` seconds after the last state was written (or the training
    started), so 0 writes after every epoch, and never after the last epoch, whose results
    the caller writes at once (`state_due`). A kill loses at most `resume_every` seconds plus
    one epoch of training. When an epoch's line is logged, the state written at the end of the
    epoch before it is on disk, and fit returns only once the last state is. A later call with
    the same file, settings and data continues after the last saved epoch and, on CPU, ends
    with the same history and weights as an uninterrupted run. A state written by other
    settings (but for COMPUTE_FIELDS) or data is ignored (and said so). Removing the file is
    the caller's job, once its outputs are written.
    """
    s = settings
    x_tr, y_tr = train
    x_va, y_va = val
    device = x_tr.device
    torch.manual_seed(s.seed)
    model.to(device)
    images = s.inputs == "images"
    cl = forward_format(device, bf16=s.bf16, channels_last=s.channels_last).channels_last and images
    if cl:
        model.to(memory_format=torch.channels_last)
    if s.train_only == "classifier" and images:
        for p in model.features.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
    step_model = torch.compile(model) if s.compile else model

    rows: list[dict] = []
    best = {"epoch": 0, "acc": -1.0, "loss": float("inf"), "state": None}
    diverged_epoch = None
    n = len(x_tr)
    t_start = time.perf_counter()
    study = {k: v for k, v in asdict(s).items() if k not in COMPUTE_FIELDS}
    identity = {"settings": study, "data": fingerprint(x_tr, y_tr, x_va, y_va),
                "initial_model": fingerprint(*model.state_dict().values())}
    start = 1
    saved = load_resume_state(resume, identity, log) if resume is not None else None
    if saved is not None:
        try:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            log(f"resume: {resume} does not fit this model ({e}); starting from epoch 1")
        else:
            sched.load_state_dict(saved["scheduler"])
            _set_rng_states(saved["rng"], device)
            rows, best = list(saved["history"]), dict(saved["best"])
            start = int(saved["epoch"]) + 1
            t_start -= float(saved["seconds"])
            log(f"resume: continuing after epoch {saved['epoch']} of {s.epochs} from {resume} "
                f"(best so far {100 * best['acc']:.2f}% at epoch {best['epoch']})")
    writer = BackgroundWriter() if resume is not None else None
    t_saved = time.perf_counter()  # the last state written, or the start of this run
    with cudnn_autotune(device):  # on CUDA: the batches' shapes are fixed
        for epoch in range(start, s.epochs + 1):
            t0 = time.perf_counter()
            # One generator per epoch, seeded by (seed, epoch): order and augmentation of an epoch
            # do not depend on what ran before it.
            gen = torch.Generator(device=device).manual_seed(s.seed * 100_003 + epoch)
            torch.manual_seed(s.seed * 100_003 + epoch)  # dropout
            _set_train_mode(model, s.train_only if images else "all")
            lr_now = opt.param_groups[0]["lr"]
            perm = torch.randperm(n, generator=gen, device=device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            t_note = t0
            for i in range(0, n, s.batch_size):
                if time.perf_counter() - t_note > PROGRESS_EVERY_S:  # long (CPU) epochs
                    t_note = time.perf_counter()
                    log(f"epoch {epoch}/{s.epochs}: {i}/{n} images, "
                        f"{i / (t_note - t0):.0f} images/s")
                idx = perm[i:i + s.batch_size]
                xb, yb = x_tr[idx], y_tr[idx]  # (B, 3, 32, 32) uint8, (B,)
                if s.augment:
                    xb = augment_batch(xb, s.pad, gen)
                if cl:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with _autocast(device, s.bf16):
                    out = step_model(xb)
                    loss = F.cross_entropy(out.float(), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach() * len(idx)
                correct += (out.detach().argmax(1) == yb).sum()
            train_loss = loss_sum.item() / n  # waits for the device: the epoch's training is done
            train_acc = correct.item() / n
            images_per_s = n / (time.perf_counter() - t0)
            sched.step()
            if not math.isfinite(train_loss):
                diverged_epoch = epoch
                rows.append(dict(epoch=epoch, lr=lr_now, train_loss=train_loss, train_acc=train_acc,
                                 val_loss=float("nan"), val_acc=float("nan"),
                                 seconds=time.perf_counter() - t0, images_per_s=images_per_s))
                log(f"epoch {epoch}/{s.epochs}: training loss is {train_loss} at lr {s.lr:g}: "
                    "diverged")
                if stop_on_divergence:
                    break
                continue
            val_loss, val_acc = evaluate(model, x_va, y_va, batch_size=s.eval_batch_size,
                                         bf16=s.bf16, channels_last=cl)
            if val_acc > best["acc"]:
                best.update(epoch=epoch, acc=val_acc, loss=val_loss,
                            state={k: v.detach().to("cpu", copy=True)
                                   for k, v in model.state_dict().items()})
            secs = time.perf_counter() - t0
            rows.append(dict(epoch=epoch, lr=lr_now, train_loss=train_loss, train_acc=train_acc,
                             val_loss=val_loss, val_acc=val_acc, seconds=secs,
                             images_per_s=images_per_s))
            saving = writer is not None and state_due(epoch, s.epochs,
                                                      time.perf_counter() - t_saved, s.resume_every)
            if saving:  # written while the next epoch trains
                t_saved = time.perf_counter()
                writer.submit(resume, _resume_state(identity, epoch, model, opt, sched, device, rows,
                                                    best, t_saved - t_start))
            log(f"epoch {epoch:>3}/{s.epochs}  lr {lr_now:.4g}  "
                f"train loss {train_loss:.4f} acc {100 * train_acc:5.2f}%  "
                f"val loss {val_loss:.4f} acc {100 * val_acc:5.2f}%  "
                f"{secs:6.1f} s ({images_per_s:,.0f} images/s)  "
                f"best {100 * best['acc']:.2f}% (epoch {best['epoch']})"
                + ("  [resume state]" if saving else ""))

        if writer is not None:
            writer.close()  # the last state is on disk before the caller goes on (or removes it)
    if best["state"] is None:  # diverged in the first epoch: keep what there is
        best["state"] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        best["acc"], best["loss"] = float("nan"), float("nan")
    return FitResult(
        history=pd.DataFrame(rows, columns=HISTORY_COLUMNS),
        best_state=best["state"],
        best_epoch=best["epoch"],
        best_val_acc=best["acc"],
        best_val_loss=best["loss"],
        diverged=diverged_epoch is not None,
        diverged_epoch=diverged_epoch,
        seconds=time.perf_counter() - t_start,
        settings=asdict(s),
    )


# ----------------------------------------------------------------------------------------
# Resumable state


def state_due(epoch: int, epochs: int, since_saved: float, every: float) -> bool:
    """Whether fit writes its resumable state after `epoch` (1-based) of `epochs`: when at
    least `every` seconds have passed since the last state was written (or the training
    started), never after the last epoch (its results are written at once)."""
    return epoch < epochs and since_saved >= every


def _rng_states(device: torch.device) -> dict:
    states = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def _set_rng_states(states: dict, device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def _resume_state(identity: dict, epoch: int, model: nn.Module, opt, sched,
                  device: torch.device, rows: list[dict], best: dict, seconds: float) -> dict:
    """A snapshot of the training, every tensor copied to the CPU, so that training can go on
    while it is written. best["state"] is already a CPU copy that is replaced, never changed."""
    return {
        **identity,
        "epoch": epoch,
        "model": _cpu_copy(model.state_dict()),
        "optimizer": _cpu_copy(opt.state_dict()),
        "scheduler": _cpu_copy(sched.state_dict()),
        "rng": _rng_states(device),
        "history": [dict(r) for r in rows],
        "best": dict(best),
        "seconds": seconds,
    }


def _cpu_copy(obj):
    """obj with every tensor in it (through dicts, lists and tuples) copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


class BackgroundWriter:
    """Writes files (torch.save, atomically) one at a time in a background thread.

    submit() first waits for the write before it, so at most one snapshot waits in memory; an
    error of a write is raised by the next submit() or by close(). The thread is not a daemon:
    a process that ends normally finishes its last write first."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, path: str | Path, obj) -> None:
        self.close()
        self._thread = threading.Thread(target=self._write, args=(path, obj),
                                        name="sicompress-state-writer")
        self._thread.start()

    def _write(self, path, obj) -> None:
        try:
            save_torch(path, obj)
        except BaseException as e:  # handed to the training thread
            self._error = e

    def close(self) -> None:
        """Wait for the write in progress; raise its error, if any."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def load_resume_state(path, identity: dict, log: Callable[[str], None] = print) -> dict | None:
    """The resumable state in `path` when it exists and was written by the same settings and
    data (`identity`); otherwise None, with a log line saying why."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or foreign file: start afresh, never fail on it
        log(f"resume: cannot read {path} ({type(e).__name__}: {e}); starting from epoch 1")
        return None
    if not isinstance(state, dict) or any(state.get(k) != v for k, v in identity.items()):
        log(f"resume: {path} was written by other settings or data; starting from epoch 1")
        return None
    return state


def scaled_step(step_size: int, epochs: int, full_epochs: int) -> int:
    """A step given in epochs of the full schedule, scaled to a shorter run (at least 1)."""
    return max(1, int(round(step_size * epochs / full_epochs)))


def settings_from_config(section: dict, seed: int, *, compute: dict | None = None,
                         **overrides) -> TrainSettings:
    """TrainSettings from a config section (e.g. config["train"]) and the compute settings
    (config["compute"]); keys they do not know are ignored, `overrides` win."""
    known = set(TrainSettings.__dataclass_fields__)
    values = {k: v for k, v in {**section, **(compute or {})}.items() if k in known}
    values.update(seed=seed, **{k: v for k, v in overrides.items() if v is not None})
    return TrainSettings(**values)
