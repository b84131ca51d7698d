"""A guard, run on CPU-only machines, for tensors that end up on two devices.

A GPU run crashed once because a function built its labels and class means on the CPU and
added the (GPU) activations into them. Nothing on a CPU-only machine could show it: there,
every tensor is on the CPU. Here the inputs live on PyTorch's `meta` device, which holds
shapes but no values: an operation that mixes a meta tensor with a tensor made on the CPU
fails exactly as a CUDA tensor mixed with a CPU tensor does. Reading a value of a meta tensor
(`.item()`, `.tolist()`, `.cpu()`, a data-dependent shape such as `nonzero`) answers zeros
(`MetaReads`), so every entry point runs through to its end, every step of its loops on the
same fake device, not only up to its first read. The numbers computed are meaningless; only
where tensors live is checked. The values themselves are checked by the other tests, and on
a GPU by the CUDA test mode (docs/development.md, "Tests on a GPU").
"""

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from sicompress.activations import layer_activations
from sicompress.layer_si import layer_separation
from sicompress.model import build_model, checkpoint_payload
from sicompress.networks import vgg_arch
from sicompress.pruning import build_compressed, compressed_state
from sicompress.selection import forward_select, forward_select_naive
from sicompress.si import (center_separation_index, center_si_curve, si_curve, nearest_neighbors,
                           separation_indices)

META = torch.device("meta")
aten = torch.ops.aten


class MetaReads(TorchDispatchMode):
    """Reads of meta tensors' values answer zeros, so that code runs past them. A result of
    `all()` reads True (checks such as "all finite" pass), every other truth value False."""

    def __init__(self):
        super().__init__()
        self.all_results = {}  # id -> tensor (kept alive, so that ids are not reused)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if func is aten.copy_.default and first is not None and not first.is_meta \
                and args[1].is_meta:  # a meta source copied into a real tensor (load_state_dict)
            return first.zero_()
        if first is not None and first.is_meta:
            if func is aten.is_nonzero.default:  # bool(), if
                return id(first) in self.all_results
            if func is aten._local_scalar_dense.default:  # .item(), float(), int()
                if first.dtype == torch.bool:
                    return id(first) in self.all_results
                return 0.0 if first.is_floating_point() else 0
            if func is aten._to_copy.default and kwargs.get("device") not in (None, META):
                return torch.zeros(first.shape, dtype=kwargs.get("dtype") or first.dtype,
                                   device=kwargs["device"])  # .cpu(), .tolist()
            if func is aten.nonzero.default:  # a data-dependent shape: say nothing is set
                return torch.empty((0, first.ndim), dtype=torch.long, device=META)
            if func is aten.bincount.default:  # no meta kernel: its length is data-dependent
                length = max(kwargs.get("minlength", args[2] if len(args) > 2 else 0), 1)
                return torch.zeros(length, dtype=torch.long, device=META)
        out = func(*args, **kwargs)
        if func.overloadpacket is aten.all:
            self.all_results[id(out)] = out
        return out


def on_meta(fn, *args, **kwargs):
    """fn(*args, **kwargs) under MetaReads; a device mix is reported with its message."""
    with MetaReads():
        try:
            return fn(*args, **kwargs)
        except (RuntimeError, NotImplementedError) as e:
            if "device" in str(e):
                pytest.fail(f"{fn.__name__} mixes devices: {e}")
            raise


def tensors_on(obj, device):
    """Every tensor in obj is on `device`."""
    leaves = [t for t in tree_leaves(obj) if isinstance(t, torch.Tensor)]
    return all(t.device == device for t in leaves)


def activations(n=40, c=6, hw=2):
    x = torch.empty(n, c, hw, hw, device=META)  # (N, C, H, W), no values
    y = np.arange(n) % 4
    return x, y


# ----------------------------------------------------------------------------------------
# The guard itself catches what it is meant to catch


def test_the_guard_catches_a_tensor_made_on_the_cpu():
    def crashes(x):
        means = torch.zeros(4, x.shape[1])  # made on the CPU: the old center_si_curve's error
        return means.index_add_(0, torch.zeros(len(x), dtype=torch.long), x)

    with pytest.raises(pytest.fail.Exception, match="mixes devices"):
        on_meta(crashes, torch.empty(10, 3, device=META))


def test_the_guard_lets_value_reads_through():
    x = torch.empty(5, 3, device=META)
    assert on_meta(lambda: (x.sum().item(), x.tolist(), x.nonzero().shape)) == (
        0.0, [[0.0] * 3] * 5, (0, 2))


# ----------------------------------------------------------------------------------------
# The entry points of SI, selection and compression


@pytest.mark.parametrize("fn", [center_si_curve, si_curve])
@pytest.mark.parametrize("unit", ["channel", "element"])
def test_si_curves(fn, unit):
    x, y = activations()
    n = 6 if unit == "channel" else 24
    curve = on_meta(fn, x, y, list(range(n)), unit)
    assert len(curve) == n and all(isinstance(v, float) for v in curve)
    curve = on_meta(fn, x, torch.as_tensor(y, device=META),
                    [2, 0], unit)  # labels on the device too
    assert len(curve) == 2


@pytest.mark.parametrize("fn", [forward_select, forward_select_naive])
@pytest.mark.parametrize("unit", ["channel", "element"])
def test_forward_select(fn, unit):
    x, y = activations(c=5)
    sel = on_meta(fn, x, y, unit=unit, device=META, max_features=3, resume=[1])
    assert sel.order[0] == 1 and len(sel.order) == 3 and len(sel.si) == 3


def test_si_entry_points():
    x, y = activations()
    assert on_meta(nearest_neighbors, x, 2).device == META
    assert on_meta(nearest_neighbors, x, 2, standardize=True, chunk_size=7).shape == (40, 2)
    assert set(on_meta(separation_indices, x, y, 2)) == {"si", "si_high", "si_soft"}
    assert isinstance(on_meta(center_separation_index, x, torch.as_tensor(y), chunk_size=9),
                      float)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(vgg_arch(0.0625, hidden=[8])).eval()


def test_layer_separation_and_layer_activations(tiny):
    model = build_model(tiny.arch).to(META).eval()
    images = torch.empty(12, 3, 32, 32, dtype=torch.uint8, device=META)
    table = on_meta(layer_separation, model, images, np.arange(12) % 3, order=2, batch_size=5)
    assert len(table) == 21  # input, 18 extractor layers, fc1, logits
    assert on_meta(layer_activations, model, images, "pool2").device == META


def test_compressed_model_from_weights_on_another_device(tiny):
    payload = checkpoint_payload(tiny)
    state = {k: v.to(META) for k, v in payload["state_dict"].items()}
    out = on_meta(compressed_state, payload["arch"], state, "conv3_2", "channel", [3, 0])
    assert tensors_on(out, META)
    model = on_meta(build_compressed, {"arch": payload["arch"], "state_dict": state}, "conv3_2",
                    "channel", [3, 0], hidden=[4], dropout=0.0, seed=0)
    assert model.features.conv3_2.conv.weight.shape[0] == 2
