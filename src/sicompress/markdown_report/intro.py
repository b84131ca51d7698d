"""The title and the first paragraph: which data, which network, how long it was trained."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .. import networks
from ..data import image_format
from .inputs import ReportInputs

NAME = "intro"  # the section's template: templates/intro.md.j2


def headings(inputs: ReportInputs) -> list[str]:
    return []  # the title only


def data_path(config: dict) -> str | None:
    data = config.get("data", {})
    path = data.get("path")
    if data.get("source") == "folder" and not path:
        path = os.environ.get("CIFAR10_JPEG") or "$CIFAR10_JPEG"
    return path


def data_context(inputs: ReportInputs) -> dict:
    """Source, file name and image format of the data; the format is the one prepare_data
    recorded in the npz ("unknown" when the npz predates that record or is not an input)."""
    data = inputs.config.get("data", {})
    fmt = image_format(inputs.data) if inputs.data is not None else "unknown"
    return {"source": data.get("source"), "name": Path(str(data_path(inputs.config))).name,
            "image_format": fmt, "jpeg": "JPEG" in fmt.split(", ")}


def network_context(config: dict) -> dict:
    """The network's name as the report writes it, and what its width multiplies."""
    name = config.get("model", {}).get("arch", "vgg16")
    return {"name": name, "title": networks.title(name), "resnet": networks.is_resnet(name)}


def context(inputs: ReportInputs, table: pd.DataFrame) -> dict:
    return {"data": data_context(inputs), "network": network_context(inputs.config)}
