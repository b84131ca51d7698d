"""Which device a job computes on, and how jobs share the GPUs of one machine.

Snakemake's `gpu` resource bounds how many GPU jobs run at once (the default profile sets it to
the number of GPUs), but it does not tell a job *which* GPU to use: without more, every job
would run on the first one. So a job that is free to choose (device `None` or "auto") claims a
GPU for itself: it takes an exclusive lock on a small file per GPU (`flock`), the first GPU
whose lock is free, and holds it until the process ends. The kernel releases the lock when the
process ends in any way, a SIGKILL included, so a killed job never blocks a GPU.

On a cluster the scheduler usually shows each job only its own GPU (CUDA_VISIBLE_DEVICES);
with one visible GPU nothing is locked. Lock files live in `$SICOMPRESS_GPU_LOCKS`, else in a
per-user folder of the temporary directory; they are keyed by the visible device id, so jobs
with the same CUDA_VISIBLE_DEVICES agree on what each index means.

`$SICOMPRESS_DEVICE` (cpu, cuda, cuda:1, ...; empty or auto: the choice above) sets the device
of every job that is free to choose, without touching the study's configuration: a compute
setting, like the number of threads. "cuda" still claims a free GPU; naming CUDA on a machine
without it is an error, never a silent fall back to the CPU.

    dev = pick_device(None, log=print)   # cuda:k on a free GPU, else cpu
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import IO, Callable

import torch

try:  # POSIX; elsewhere jobs simply use the first GPU
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

DEVICE_ENV = "SICOMPRESS_DEVICE"  # device of the jobs free to choose (a compute setting)

_claimed: torch.device | None = None
_held: list[IO] = []  # open lock files: the locks last as long as the process


def pick_device(device: str | torch.device | None = None, *,
                log: Callable[[str], None] | None = None) -> torch.device:
    """`device` as given, or for None/"auto": `$SICOMPRESS_DEVICE` when it names one, else a
    free GPU of this machine when CUDA is present (claimed once per process and made the
    current CUDA device), else the CPU."""
    global _claimed
    if device in (None, "", "auto"):
        device = os.environ.get(DEVICE_ENV, "").strip() or None
        if device is not None and device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"{DEVICE_ENV}={device}, but torch {torch.__version__} sees no CUDA "
                               f"device (CUDA build: {torch.version.cuda or 'none'})")
        if device == "cuda":  # any GPU: claim a free one, as for auto
            device = None
    if device not in (None, "", "auto"):
        return torch.device(device)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if _claimed is None:
        n = torch.cuda.device_count()
        index = 0 if n == 1 else claim_gpu(n, log=log)
        torch.cuda.set_device(index)
        _claimed = torch.device("cuda", index)
    return _claimed


def lock_dir() -> Path:
    """Where the per-GPU lock files live."""
    env = os.environ.get("SICOMPRESS_GPU_LOCKS")
    if env:
        return Path(env)
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"sicompress-gpu-locks-{uid}"


def visible_ids(n: int) -> list[str]:
    """The id of each of the `n` visible GPUs: the entries of CUDA_VISIBLE_DEVICES when it
    names them, else 0..n-1."""
    env = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return env[:n] if len(env) >= n else [str(i) for i in range(n)]


def claim_gpu(n: int, directory: str | Path | None = None,
              log: Callable[[str], None] | None = None) -> int:
    """Index (0..n-1) of the first of `n` GPUs no other process has claimed, claimed for this
    process until it ends. When all are claimed (more GPU jobs than GPUs: the profile's `gpu`
    resource is larger than the machine), the GPU with index pid mod n is shared, and said so.
    """
    say = log or (lambda m: None)
    if fcntl is None or n < 2:
        return 0
    folder = Path(directory) if directory is not None else lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    ids = visible_ids(n)
    for index, gpu in enumerate(ids):
        f = open(folder / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', gpu)}.lock", "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by another process
            f.close()
            continue
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        _held.append(f)
        say(f"device: claimed GPU {index} (id {gpu}) of {n}; lock {f.name}")
        return index
    index = os.getpid() % n
    say(f"device: all {n} GPUs are claimed by other jobs; sharing GPU {index}. Set the profile's "
        f"gpu resource to at most {n} so that GPU jobs do not share a card")
    return index
