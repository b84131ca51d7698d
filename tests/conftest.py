"""Helpers shared by the tests, and the device they compute on.

`SICOMPRESS_TEST_DEVICE` (default cpu) is where the tests put their tensors, models and
trainings: `SICOMPRESS_TEST_DEVICE=cuda pytest` runs every test that computes with tensors on
the GPU, the workflow's jobs included (they read it as `SICOMPRESS_DEVICE`). Asked for CUDA
on a machine without it, the run stops at once and says so: it does not skip.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sicompress.data import prepare_data
from sicompress.devices import DEVICE_ENV
from sicompress.splits import write_split

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tests" / "smoke.yaml"
SMOKE_RESNET = ROOT / "tests" / "smoke-resnet.yaml"
TEST_DEVICE_ENV = "SICOMPRESS_TEST_DEVICE"
TEST_DEVICE = torch.device(os.environ.get(TEST_DEVICE_ENV, "").strip() or "cpu")


def pytest_configure(config):
    if TEST_DEVICE.type == "cuda" and not torch.cuda.is_available():
        pytest.exit(f"{TEST_DEVICE_ENV}={TEST_DEVICE} but torch {torch.__version__} sees no CUDA "
                    f"device (CUDA build: {torch.version.cuda or 'none'}); run on a machine with a "
                    f"GPU, or leave {TEST_DEVICE_ENV} unset for the CPU", returncode=4)
    # Every job and library call free to choose its device (device=None) takes the tests'
    # device, also on a machine with a GPU when the tests run on the CPU.
    os.environ[DEVICE_ENV] = str(TEST_DEVICE)


def pytest_report_header(config):
    name = torch.cuda.get_device_name(TEST_DEVICE) if TEST_DEVICE.type == "cuda" else "CPU"
    return f"sicompress test device: {TEST_DEVICE} ({name}; {TEST_DEVICE_ENV})"


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The device the tests compute on (SICOMPRESS_TEST_DEVICE, default cpu)."""
    return TEST_DEVICE


def on_cuda_only(reason: str):
    """Mark a test that compares the GPU with the CPU: it runs in the CUDA test mode."""
    return pytest.mark.skipif(TEST_DEVICE.type != "cuda",
                              reason=f"{reason}; runs with {TEST_DEVICE_ENV}=cuda")


def synthetic_study(directory: Path, *, train_per_class: int, si_fraction: float) -> Path:
    """data.npz, split.npz and summary.json of a small synthetic set in `directory`."""
    prepare_data("synthetic", None, directory / "data.npz", log=lambda m: None,
                 synthetic={"train_per_class": train_per_class, "test_per_class": 5, "noise": 0.1})
    write_split(directory / "data.npz", directory / "split.npz", directory / "summary.json",
                val_fraction=0.1, si_fraction=si_fraction, si_test_fraction=0.2, seed=0,
                log=lambda m: None)
    return directory


def snakemake(*args, workdir: Path, check: bool = True) -> subprocess.CompletedProcess:
    """The real `snakemake` command on this repository's workflow, in `workdir`."""
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    proc = subprocess.run([exe, "--directory", str(workdir), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return proc


# The smoke studies' jobs at one torch thread each, two side by side on 2 cores: their tiny
# trainings cost mostly each job's start, which then overlaps (ResNet smoke: 264 s against 322 s
# at two threads one job at a time, measured on 2 cores)
ONE_THREAD = ("--max-threads", "1")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The study on tests/smoke.yaml through the real snakemake command, and its HTML report;
    run once per session, shared by the workflow, report and browser tests.
    SICOMPRESS_SMOKE_RUN=<folder> runs it there, or reuses the finished run there (snakemake
    then only checks that it is up to date): for working on the tests that read it."""
    reuse = os.environ.get("SICOMPRESS_SMOKE_RUN")
    workdir = Path(reuse) if reuse else tmp_path_factory.mktemp("smoke")
    snakemake("--cores", "2", *ONE_THREAD, "--configfile", str(SMOKE), workdir=workdir)
    snakemake("--configfile", str(SMOKE), "--report", "results/report/report.html", workdir=workdir)
    return workdir


@pytest.fixture(scope="session")
def resnet_smoke_run(tmp_path_factory):
    """The study on tests/smoke-resnet.yaml (ResNet-20) through the real snakemake command;
    run once per session. SICOMPRESS_RESNET_SMOKE_RUN=<folder> runs it there, or reuses the
    finished run there."""
    reuse = os.environ.get("SICOMPRESS_RESNET_SMOKE_RUN")
    workdir = Path(reuse) if reuse else tmp_path_factory.mktemp("smoke-resnet")
    snakemake("--cores", "2", *ONE_THREAD, "--configfile", str(SMOKE_RESNET), workdir=workdir)
    return workdir


def random_batchnorm(model: torch.nn.Module, spread: float = 0.5,
                     affine: bool = True) -> torch.nn.Module:
    """Give every BatchNorm2d of `model` statistics that are not the identity (running mean
    ~ N(0, spread), running variance ~ U(0.5, 2)) and, with `affine`, weights ~ U(0.5, 1.5) and
    biases ~ N(0, spread): a wrongly sliced, skipped or reordered BatchNorm then changes the
    output. Draws from torch's global generator (seed it first); returns the model."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, spread)
                m.running_var.uniform_(0.5, 2.0)
                if affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0.0, spread)
    return model


def macs_by_hooks(model: torch.nn.Module, convs_and_linears_only: bool = False) -> dict[str, int]:
    """Operations per image counted on a forward pass by hooks on every module (the slow
    reference of the report's MACs, which come from Torch-Pruning's counter on the arch):
    conv k*k*C_in/groups per output value (+1 with a bias), Linear in*out (+out with a bias),
    BatchNorm 2 per value, ReLU 1 per value, pools 1 per input value. With
    convs_and_linears_only: the multiply-accumulates of convs and Linears alone."""
    counts = {"features": 0, "classifier": 0}

    def hook(part):
        def count(mod, inputs, out):
            n = 0
            if isinstance(mod, torch.nn.Conv2d):
                k = mod.kernel_size[0] * mod.kernel_size[1]
                n = out[0].numel() * k * mod.in_channels // mod.groups
                if mod.bias is not None and not convs_and_linears_only:
                    n += out[0].numel()
            elif isinstance(mod, torch.nn.Linear):
                n = mod.in_features * mod.out_features
                if mod.bias is not None and not convs_and_linears_only:
                    n += mod.out_features
            elif convs_and_linears_only:
                n = 0
            elif isinstance(mod, torch.nn.BatchNorm2d):
                n = 2 * inputs[0][0].numel()
            elif isinstance(mod, torch.nn.ReLU):
                n = out[0].numel()
            elif isinstance(mod, (torch.nn.MaxPool2d, torch.nn.AdaptiveAvgPool2d)):
                n = inputs[0][0].numel()
            counts[part] += n
        return count

    handles = [mod.register_forward_hook(hook(part))
               for part in ("features", "classifier")
               for mod in getattr(model, part).modules()]
    was_training = model.training
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 32, 32))
    model.train(was_training)
    for h in handles:
        h.remove()
    return {**counts, "total": counts["features"] + counts["classifier"]}
