"""Helpers shared by the tests, and the device they compute on.

`SICOMPRESS_TEST_DEVICE` (default cpu) is where the tests put their tensors, models and
trainings: `SICOMPRESS_TEST_DEVICE=cuda pytest` runs every test that computes with tensors on
the GPU, the workflow's jobs included (they read it as `SICOMPRESS_DEVICE`). Asked for CUDA
on a machine without it, the run stops at once and says so: it does not skip.
"""

import os
from pathlib import Path

import pytest
import torch

from sicompress.data import prepare_data
from sicompress.devices import DEVICE_ENV
from sicompress.splits import write_split

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
