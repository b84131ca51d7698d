"""Helpers shared by the tests."""

from pathlib import Path

from sicompress.data import prepare_data
from sicompress.splits import write_split


def synthetic_study(directory: Path, *, train_per_class: int, si_fraction: float) -> Path:
    """data.npz, split.npz and summary.json of a small synthetic set in `directory`."""
    prepare_data("synthetic", None, directory / "data.npz", log=lambda m: None,
                 synthetic={"train_per_class": train_per_class, "test_per_class": 5, "noise": 0.1})
    write_split(directory / "data.npz", directory / "split.npz", directory / "summary.json",
                val_fraction=0.1, si_fraction=si_fraction, si_test_fraction=0.2, seed=0,
                log=lambda m: None)
    return directory
