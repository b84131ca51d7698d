"""The latency table times the models as the trainings evaluate them: the precision and memory
format that the compute settings give on the device, stated in the table."""

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from sicompress import latency
from sicompress.model import build_model, checkpoint_payload, load_model
from sicompress.networks import vgg_arch
from sicompress.engine import TrainSettings, fit

from conftest import on_cuda_only, synthetic_study

QUIET = {"log": lambda m: None}
SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def tiny_vgg() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(vgg_arch(0.0625, [8], 0.0, 10))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A synthetic data set and split, and a tiny VGG checkpoint."""
    d = synthetic_study(tmp_path_factory.mktemp("latency"), train_per_class=10, si_fraction=0.5)
    torch.save(checkpoint_payload(tiny_vgg()), d / "model.pt")
    return d


# ----------------------------------------------------------------------------------------
# What the compute settings mean on each device


def schema_compute_defaults() -> dict:
    """config["compute"]'s defaults as the config schema states them."""
    props = yaml.safe_load(SCHEMA.read_text())["properties"]["compute"]["properties"]
    return {k: props[k]["default"] for k in ("bf16", "channels_last")}


@pytest.mark.parametrize("device, compute, bf16, channels_last, precision", [
    # bf16 autocast and channels_last are CUDA only: on the CPU the models run in float32
    ("cpu", {"bf16": True, "channels_last": True}, False, False, "float32"),
    ("cpu", {"bf16": False, "channels_last": False}, False, False, "float32"),
    ("cuda", {"bf16": True, "channels_last": True}, True, True,
     "bfloat16 autocast, channels_last"),
    ("cuda", {"bf16": True, "channels_last": False}, True, False, "bfloat16 autocast"),
    ("cuda", {"bf16": False, "channels_last": True}, False, True, "float32, channels_last"),
    ("cuda", {"bf16": False, "channels_last": False}, False, False, "float32"),
    ("cuda:1", {"bf16": True, "channels_last": True, "si_batch_size": 7}, True, True,
     "bfloat16 autocast, channels_last"),  # other compute keys are not the timing's
])
def test_timing_format_of_the_compute_settings(device, compute, bf16, channels_last, precision):
    fmt = latency.timing_format(compute, torch.device(device))  # no GPU needed to decide
    assert (fmt.bf16, fmt.channels_last, fmt.precision) == (bf16, channels_last, precision)


def test_timing_format_without_compute_keys_takes_the_schemas_defaults():
    defaults = schema_compute_defaults()
    for device in ("cpu", "cuda"):
        expected = latency.timing_format(defaults, torch.device(device))
        assert latency.timing_format({}, torch.device(device)) == expected
        assert latency.timing_format(None, torch.device(device)) == expected


# ----------------------------------------------------------------------------------------
# The timed forward pass is the evaluated one


class Recorder:
    """What the first convolution and the last Linear layer see in eval-mode forward passes:
    (layer, dtype of its output, output in channels_last, autocast on for the device)."""

    def __init__(self, model: torch.nn.Module):
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        self.seen: set[tuple] = set()
        self.handles = [convs[0].register_forward_hook(self.hook("conv")),
                        linears[-1].register_forward_hook(self.hook("linear"))]

    def hook(self, name):
        def record(module, inputs, out):
            if module.training:  # the training passes of fit: not the evaluation
                return
            cl = out.ndim == 4 and out.is_contiguous(memory_format=torch.channels_last) \
                and not out.is_contiguous()
            self.seen.add((name, out.dtype, cl, torch.is_autocast_enabled(out.device.type)))
        return record

    def remove(self):
        for h in self.handles:
            h.remove()


def evaluated_and_timed(device: torch.device, compute: dict) -> tuple[set, set]:
    """What a model's forward passes see in fit's evaluation (the validation accuracy) with
    the compute settings `compute`, and in the latency's timed passes of the same model."""
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, device=device)
    y = torch.arange(8, device=device) % 10
    model = tiny_vgg()
    rec = Recorder(model)
    fit(model, (x, y), (x, y), TrainSettings(epochs=1, batch_size=4, eval_batch_size=8, **compute),
        **QUIET)
    rec.remove()
    fresh = tiny_vgg().to(device)  # as the latency job loads it: stored memory format
    timed = Recorder(fresh)
    latency.time_forward(fresh, x, fmt=latency.timing_format(compute, device),
                         min_run_time=0.01, warmup=1)
    timed.remove()
    return rec.seen, timed.seen


def test_timed_forward_runs_as_the_evaluation(device):
    evaluated, timed = evaluated_and_timed(device, {"bf16": True, "channels_last": True})
    assert timed == evaluated
    if device.type == "cpu":  # the compute settings do nothing on the CPU
        assert evaluated == {("conv", torch.float32, False, False),
                             ("linear", torch.float32, False, False)}


@on_cuda_only("bf16 autocast and channels_last are CUDA only")
def test_timed_forward_on_cuda_is_bf16_channels_last(device):
    evaluated, timed = evaluated_and_timed(device, {"bf16": True, "channels_last": True})
    assert evaluated == {("conv", torch.bfloat16, True, True),
                         ("linear", torch.bfloat16, False, True)}
    assert timed == evaluated
    evaluated, timed = evaluated_and_timed(device, {"bf16": False, "channels_last": False})
    assert evaluated == {("conv", torch.float32, False, False),
                         ("linear", torch.float32, False, False)}
    assert timed == evaluated


# ----------------------------------------------------------------------------------------
# The table


def test_the_latency_table_states_the_precision(study, tmp_path, device):
    table = latency.measure_latency({"e2e": study / "model.pt"}, study / "data.npz",
                                    tmp_path / "latency.csv", batch_sizes=(1, 4),
                                    min_run_time=0.01, device=str(device),
                                    compute={"bf16": True, "channels_last": True}, **QUIET)
    written = pd.read_csv(tmp_path / "latency.csv")
    assert list(written.columns) == latency.COLUMNS and "precision" in written.columns
    expected = "float32" if device.type == "cpu" else "bfloat16 autocast, channels_last"
    assert list(written["precision"]) == [expected, expected]
    assert list(table["precision"]) == [expected, expected]
    # the checkpoint on disk is what it was: only the loaded copy was converted
    assert load_model(study / "model.pt").features.conv1_1.conv.weight.is_contiguous()


def test_the_latency_table_on_the_cpu_is_float32_whatever_the_settings(study, tmp_path):
    for compute in ({"bf16": True, "channels_last": True}, {"bf16": False}, None):
        table = latency.measure_latency({"e2e": study / "model.pt"}, study / "data.npz",
                                        tmp_path / "latency.csv", batch_sizes=(2,),
                                        min_run_time=0.01, device="cpu", compute=compute, **QUIET)
        assert list(table["precision"]) == ["float32"]
