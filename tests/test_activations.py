"""The one reader of activations (`activations.layer_activations`), against the outputs a plain
forward pass of the whole model hands to forward hooks, and a pooled map averaged by hand."""

import pytest
import torch

from sicompress.activations import layer_activations, subset_activations
from sicompress.model import build_model, checkpoint_payload
from sicompress.networks import vgg_arch

from conftest import random_batchnorm


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return random_batchnorm(build_model(vgg_arch(0.0625, hidden=[8, 6])), spread=0.1,
                            affine=False).eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8, generator=g)


def hooked(model, images) -> dict[str, torch.Tensor]:
    """Every named output of one ordinary forward pass of the whole model, caught by hooks:
    each extractor layer's module, and the classifier's ReLU (fc1, fc2) and last Linear."""
    out, handles = {}, []

    def keep(name):
        return lambda mod, inputs, output: out.__setitem__(name, output.detach().clone())

    for spec, mod in zip(model.arch["features"], model.features):
        handles.append(mod.register_forward_hook(keep(spec["name"])))
    layers = dict(model.classifier.layers.named_children())
    for name in layers:
        if name.startswith("relu"):
            handles.append(layers[name].register_forward_hook(keep(f"fc{name[4:]}")))
    handles.append(layers["out"].register_forward_hook(keep("logits")))
    with torch.no_grad():
        logits = model(images)
    for h in handles:
        h.remove()
    assert torch.equal(out["logits"], logits)
    return out


def test_every_layer_equals_the_whole_forward_pass(model, images):
    want = hooked(model, images)
    names = [s["name"] for s in model.arch["features"]] + ["fc1", "fc2", "logits"]
    assert set(want) == set(names)
    for name in names:
        got = layer_activations(model, images, name, batch_size=3)  # 3 batches: 3, 3, 1
        assert got.dtype == torch.float32 and got.shape == want[name].shape, name
        torch.testing.assert_close(got, want[name], rtol=1e-5, atol=1e-6, msg=name)


def test_pooled_maps_are_block_means(model, images):
    full = hooked(model, images)["conv2_1"]  # (7, C, 16, 16)
    n, c = full.shape[:2]
    by_hand = full.reshape(n, c, 2, 8, 2, 8).mean(dim=(3, 5))  # 2 x 2 blocks of 8 x 8
    got = layer_activations(model, images, "conv2_1", pool=2)
    torch.testing.assert_close(got, by_hand, rtol=1e-5, atol=1e-6)
    same = layer_activations(model, images, "pool5", pool=4)  # pool5 is 1 x 1: not pooled
    assert same.shape == hooked(model, images)["pool5"].shape


def test_mode_is_restored_and_names_are_checked(model, images):
    model.train()
    try:
        layer_activations(model, images, "fc1")
        assert model.training
    finally:
        model.eval()
    with pytest.raises(ValueError, match="'conv9_9' is not a layer"):
        layer_activations(model, images, "conv9_9")


def test_subset_activations_read_the_subset_it_names(model, tmp_path):
    import numpy as np

    g = np.random.default_rng(0)
    x_train = g.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    x_test = g.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "data.npz", x_train=x_train, y_train=np.arange(20) % 10,
             x_test=x_test, y_test=np.arange(10) % 10,
             classes=np.array([str(i) for i in range(10)]))
    split = {"train": np.arange(0, 12), "val": np.arange(12, 14),
             "si_train": np.array([14, 3, 7]), "si_test": np.array([9, 0])}
    np.savez(tmp_path / "split.npz", **split)
    torch.save(checkpoint_payload(model), tmp_path / "model.pt")
    for subset, x, y in (("si_train", x_train, np.arange(20) % 10),
                         ("si_test", x_test, np.arange(10) % 10)):
        acts, labels = subset_activations(tmp_path / "model.pt", tmp_path / "data.npz",
                                          tmp_path / "split.npz", "pool3", subset=subset,
                                          device="cpu")
        idx = split[subset]
        want = hooked(model, torch.from_numpy(x[idx]).permute(0, 3, 1, 2))["pool3"]
        torch.testing.assert_close(acts, want, rtol=1e-5, atol=1e-6)
        assert labels.tolist() == y[idx].tolist()
