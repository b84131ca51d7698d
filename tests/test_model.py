import pytest
import torch

from sicompress.cost import parameter_counts
from sicompress.model import CheckpointError, build_model, checkpoint_payload, load_model
from sicompress.networks import VGG_CONFIGS, vgg_arch, vgg_features


def reference_vgg16_parameters(hidden=(512, 512), classes=10):
    """Conv weight + bias + BatchNorm (weight, bias) per conv; Linear weight + bias."""
    total, c_in = 0, 3
    for v in VGG_CONFIGS["vgg16"]:
        if v == "M":
            continue
        total += 3 * 3 * c_in * v + v + 2 * v
        c_in = v
    n_in = 512
    for h in list(hidden) + [classes]:
        total += n_in * h + h
        n_in = h
    return total


def test_vgg16_parameter_count_at_width_1():
    model = build_model(vgg_arch(1.0))
    counts = parameter_counts(model)
    assert counts["total"] == reference_vgg16_parameters() == 15_253_578
    assert counts["classifier"] == 512 * 512 * 2 + 512 * 2 + 512 * 10 + 10


def test_layer_names_and_shapes():
    model = build_model(vgg_arch(0.125, hidden=[32]))
    names = [n for n, _, _ in model.feature_layers()]
    assert names == ["conv1_1", "conv1_2", "pool1", "conv2_1", "conv2_2", "pool2",
                     "conv3_1", "conv3_2", "conv3_3", "pool3", "conv4_1", "conv4_2", "conv4_3",
                     "pool4", "conv5_1", "conv5_2", "conv5_3", "pool5"]
    assert [n for n, _ in model.features.named_children()] == names
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    h = model.normalize(x)
    shapes = {}
    for name, module in model.features.named_children():
        h = module(h)
        shapes[name] = tuple(h.shape[1:])
    assert shapes["conv1_1"] == (8, 32, 32)
    assert shapes["pool1"] == (8, 16, 16)
    assert shapes["pool4"] == (64, 2, 2)
    assert shapes["pool5"] == (64, 1, 1)
    assert model(x).shape == (4, 10)


def test_width_scales_channels():
    spec = vgg_features(0.25)
    assert [l["out"] for l in spec if l["kind"] == "conv"][:3] == [16, 16, 32]
    with pytest.raises(ValueError, match="width"):
        vgg_features(0)


def test_checkpoint_roundtrip_and_errors(tmp_path):
    model = build_model(vgg_arch(0.0625, hidden=[16]))
    path = tmp_path / "model.pt"
    torch.save(checkpoint_payload(model), path)
    loaded = load_model(path)
    assert not loaded.training
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    model.eval()
    assert torch.equal(model(x), loaded(x))

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_model(truncated)

    other = build_model(vgg_arch(0.125, hidden=[16]))
    payload = checkpoint_payload(other)
    payload["arch"] = model.arch  # weights of another architecture
    wrong = tmp_path / "wrong.pt"
    torch.save(payload, wrong)
    with pytest.raises(CheckpointError, match="wrong.pt"):
        load_model(wrong)
