import copy

import pytest
import torch
from torch import nn

from sicompress.cost import macs_per_image, parameter_counts
from sicompress.activations import layer_activations
from sicompress.model import build_model, checkpoint_payload, load_model
from sicompress.networks import VGG_CONFIGS, vgg_arch
from sicompress.pruning import build_compressed

from conftest import macs_by_hooks, random_batchnorm

# Tiny VGG at width 1/16: conv channels 4, 4 | 8, 8 | 16, 16, 16 | 32 ... ; 32 -> 16 -> 8 px.


@pytest.fixture(scope="module")
def e2e():
    """A tiny VGG whose BatchNorms have non-trivial statistics, so that a wrongly sliced
    running mean / variance or affine parameter changes the output."""
    torch.manual_seed(0)
    model = build_model(vgg_arch(0.0625, hidden=[16]))
    return random_batchnorm(model, spread=0.5).eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g)


def hooked_output(model, images, layer):
    """Slow reference: the activation after `layer` captured by a hook in a full forward pass."""
    seen = {}
    module = dict(model.features.named_children())[layer]
    handle = module.register_forward_hook(lambda m, i, o: seen.update(out=o.clone()))
    model.eval()
    with torch.no_grad():
        model(images)
    handle.remove()
    return seen["out"]


def classifier_input(model, images):
    """What the classifier's first Linear receives."""
    seen = {}
    first = next(m for m in model.classifier.layers if isinstance(m, nn.Linear))
    handle = first.register_forward_hook(lambda m, i, o: seen.update(x=i[0].clone()))
    with torch.no_grad():
        model.eval()(images)
    handle.remove()
    return seen["x"]


def conv_params(c_in, c_out):
    return 3 * 3 * c_in * c_out + c_out + 2 * c_out  # conv weight + bias, BN weight + bias


def linear_params(n_in, n_out):
    return n_in * n_out + n_out


# ----------------------------------------------------------------------------------------
# Channel unit


@pytest.mark.parametrize("cut, last_conv", [("conv3_2", "conv3_2"), ("pool3", "conv3_3"),
                                            ("conv1_1", "conv1_1")])
def test_channel_cut_equals_e2e_output_on_kept_channels(e2e, images, cut, last_conv, device):
    e2e, images = copy.deepcopy(e2e).to(device), images.to(device)  # a source on the device
    selected = [3, 0, 2] if cut == "conv1_1" else [11, 2, 7, 5]
    model = build_compressed(e2e, cut, "channel", selected, hidden=[16], dropout=0.5, seed=0)
    model.to(device)
    names = [n for n, _ in model.features.named_children()]
    assert names[-1] == cut
    assert model.features[-1 if cut == last_conv else -2].conv.out_channels == len(selected)

    ref = hooked_output(e2e, images, cut)[:, sorted(selected)]  # (N, k, H, W)
    got = layer_activations(model, images, cut)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-5)
    assert torch.allclose(layer_activations(e2e, images, cut), hooked_output(e2e, images, cut))
    # ... and not any other channels (the test can tell a wrong slice).
    wrong = hooked_output(e2e, images, cut)[:, sorted(selected)[::-1]]
    assert not torch.allclose(got, wrong, atol=1e-5)
    assert model(images).shape == (len(images), 10)


def test_channel_parameter_count_by_hand(e2e):
    model = build_compressed(e2e, "conv3_2", "channel", [11, 2, 7], hidden=[16], dropout=0.5,
                             seed=0)
    k, h, w = 3, 8, 8
    features = (conv_params(3, 4) + conv_params(4, 4)        # block 1
                + conv_params(4, 8) + conv_params(8, 8)      # block 2
                + conv_params(8, 16)                         # conv3_1
                + 3 * 3 * 16 * k + k + 2 * k)                # conv3_2, sliced to k channels
    classifier = linear_params(k * h * w, 16) + linear_params(16, 10)
    assert parameter_counts(model) == {"features": features, "classifier": classifier,
                                       "total": features + classifier}
    assert model.arch["classifier"]["in_features"] == k * h * w
    assert model.arch["compression"]["selected"] == [11, 2, 7]
    assert model.arch["compression"]["kept"] == [2, 7, 11]


def test_pool_cut_keeps_the_pool_and_counts(e2e):
    model = build_compressed(e2e, "pool2", "channel", [1, 6], hidden=[], dropout=0.0, seed=0)
    assert [n for n, _ in model.features.named_children()][-3:] == ["conv2_1", "conv2_2", "pool2"]
    features = conv_params(3, 4) + conv_params(4, 4) + conv_params(4, 8) + 3 * 3 * 8 * 2 + 2 + 4
    assert parameter_counts(model)["features"] == features
    assert parameter_counts(model)["classifier"] == linear_params(2 * 8 * 8, 10)


# ----------------------------------------------------------------------------------------
# Element unit


def test_element_unit_selects_classifier_inputs(e2e, images, device):
    e2e, images = copy.deepcopy(e2e).to(device), images.to(device)
    selected = [700, 3, 1023, 64, 512]  # into conv3_3's flattened 16 x 8 x 8 = 1024 values
    model = build_compressed(e2e, "conv3_3", "element", selected, hidden=[16], dropout=0.5,
                             seed=0).to(device)
    assert model.arch["features"] == e2e.arch["features"][:9]
    source = e2e.state_dict()
    for key, value in model.features.state_dict().items():
        assert torch.equal(value, source["features." + key])
    assert model.classifier.input_index.tolist() == sorted(selected)
    assert model.arch["classifier"]["input_index"] == sorted(selected)

    flat = hooked_output(e2e, images, "conv3_3").flatten(1)  # (N, 1024)
    assert torch.allclose(classifier_input(model, images), flat[:, sorted(selected)], atol=1e-5)
    assert parameter_counts(model)["classifier"] == linear_params(5, 16) + linear_params(16, 10)


def test_invalid_selections(e2e):
    kw = dict(hidden=[16], dropout=0.5, seed=0)
    with pytest.raises(ValueError, match="not a layer"):
        build_compressed(e2e, "conv9_9", "channel", [0], **kw)
    with pytest.raises(ValueError, match="unit"):
        build_compressed(e2e, "conv3_2", "filter", [0], **kw)
    with pytest.raises(ValueError, match="at least one"):
        build_compressed(e2e, "conv3_2", "channel", [], **kw)
    with pytest.raises(ValueError, match="repeat"):
        build_compressed(e2e, "conv3_2", "channel", [1, 1], **kw)
    with pytest.raises(ValueError, match="out of range"):
        build_compressed(e2e, "conv3_2", "channel", [16], **kw)
    with pytest.raises(ValueError, match="out of range"):
        build_compressed(e2e, "pool3", "element", [16 * 4 * 4], **kw)


# ----------------------------------------------------------------------------------------
# Checkpoints


@pytest.mark.parametrize("unit, cut, selected", [("channel", "pool3", [9, 4, 0]),
                                                 ("element", "pool2", [5, 300, 77])])
def test_save_load_round_trip(e2e, images, tmp_path, unit, cut, selected):
    source = tmp_path / "e2e.pt"
    torch.save(checkpoint_payload(e2e), source)
    model = build_compressed(source, cut, unit, selected, hidden=[16], dropout=0.5, seed=3)
    # Built from the checkpoint file or from the model: the same network.
    same = build_compressed(e2e, cut, unit, selected, hidden=[16], dropout=0.5, seed=3)
    assert torch.equal(model(images), same(images))

    path = tmp_path / "compressed.pt"
    torch.save(checkpoint_payload(model), path)
    loaded = load_model(path)
    assert loaded.arch == model.arch
    assert torch.equal(loaded(images), model(images))
    assert parameter_counts(loaded) == parameter_counts(model)


# ----------------------------------------------------------------------------------------
# Multiply-accumulates


def test_vgg16_macs():
    """The counter's MACs of VGG16 by hand: the convs' and Linears' multiply-accumulates, then
    what the counter adds (biases, BatchNorm, ReLU, max-pools)."""
    macs = macs_per_image(vgg_arch(1.0))
    convs = (3 * 3 * 3 * 64 * 32 * 32 + 3 * 3 * 64 * 64 * 32 * 32
             + 3 * 3 * 64 * 128 * 16 * 16 + 3 * 3 * 128 * 128 * 16 * 16
             + 3 * 3 * 128 * 256 * 8 * 8 + 2 * 3 * 3 * 256 * 256 * 8 * 8
             + 3 * 3 * 256 * 512 * 4 * 4 + 2 * 3 * 3 * 512 * 512 * 4 * 4
             + 3 * 3 * 3 * 512 * 512 * 2 * 2)
    assert convs == 313_196_544
    linears = 512 * 512 + 512 * 512 + 512 * 10
    # every conv's output values: 2 x 64 at 32x32, 2 x 128 at 16x16, 3 x 256 at 8x8, ...
    values = 2 * 64 * 1024 + 2 * 128 * 256 + 3 * 256 * 64 + 3 * 512 * 16 + 3 * 512 * 4
    assert values == 276_480
    pools = 64 * 1024 + 128 * 256 + 256 * 64 + 512 * 16 + 512 * 4  # each pool's input values
    features = convs + values + 2 * values + values + pools  # + bias, BatchNorm, ReLU, pools
    classifier = linears + (512 + 512 + 10) + (512 + 512)   # + bias, ReLU
    assert (macs["features"], macs["classifier"]) == (features, classifier)
    assert macs["total"] == 314_958_858 == convs + linears + 1_232_906
    assert sum(v for k, v in macs["layers"].items() if not k.startswith("classifier.")) \
        == macs["features"]
    assert len(macs["layers"]) == len(VGG_CONFIGS["vgg16"]) + 3


def test_macs_and_parameters_of_a_resnet_match_the_modules_run():
    from sicompress.networks import network_arch
    import torch_pruning as tp

    arch = network_arch("resnet20", 0.25, hidden=[8], dropout=0.0)
    model = build_model(arch).eval()
    macs, ref = macs_per_image(arch), macs_by_hooks(model)
    assert (macs["features"], macs["classifier"]) == (ref["features"], ref["classifier"])
    _, params = tp.utils.count_ops_and_params(model, torch.zeros(1, 3, 32, 32))
    assert parameter_counts(model)["total"] == params


@pytest.mark.parametrize("unit, cut, selected", [(None, None, None),
                                                 ("channel", "conv3_2", [11, 2, 7]),
                                                 ("element", "pool2", [5, 300, 77])])
def test_macs_match_the_modules_run(e2e, images, unit, cut, selected):
    model = e2e if unit is None else build_compressed(e2e, cut, unit, selected, hidden=[16],
                                                      dropout=0.5, seed=0)
    macs = macs_per_image(model.arch)
    ref = macs_by_hooks(model)
    assert (macs["features"], macs["classifier"]) == (ref["features"], ref["classifier"])
    if unit == "element":  # 3 selected inputs -> 16 (+16 bias, +16 ReLU) -> 10 (+10 bias)
        assert macs["classifier"] == 3 * 16 + 16 + 16 + 16 * 10 + 10
