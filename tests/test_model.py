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


def test_the_registry_is_the_schemas_and_unknown_names_list_it():
    import yaml
    from pathlib import Path

    from sicompress.networks import NETWORKS, network_arch

    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml")
                            .read_text())
    arch = schema["properties"]["model"]["properties"]["arch"]
    assert arch["enum"] == list(NETWORKS) and arch["default"] == "vgg16"
    with pytest.raises(ValueError, match=r"unknown network 'resnet18' \(model.arch\); the "
                                         r"networks are \['vgg11', 'vgg13'"):
        network_arch("resnet18")


def test_resnet20_parameters_by_hand():
    """He et al.'s ResNet-20 for CIFAR with projection shortcuts where the shape changes
    (option B): 0.27 M parameters (their table 6, option A: without the two projections)."""
    from sicompress.networks import network_arch

    model = build_model(network_arch("resnet20", 1.0, hidden=[], dropout=0.0))
    conv = lambda i, o, k=3: i * o * k * k  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731
    stem = conv(3, 16) + bn(16)
    stage1 = 3 * (2 * conv(16, 16) + 2 * bn(16))
    stage2 = (conv(16, 32) + conv(32, 32) + 2 * bn(32) + conv(16, 32, 1) + bn(32)
              + 2 * (2 * conv(32, 32) + 2 * bn(32)))
    stage3 = (conv(32, 64) + conv(64, 64) + 2 * bn(64) + conv(32, 64, 1) + bn(64)
              + 2 * (2 * conv(64, 64) + 2 * bn(64)))
    fc = 64 * 10 + 10
    total = stem + stage1 + stage2 + stage3 + fc
    assert total == 272_474
    assert sum(p.numel() for p in model.parameters()) == total
    projections = conv(16, 32, 1) + bn(32) + conv(32, 64, 1) + bn(64)
    assert round((total - projections) / 1e6, 2) == 0.27
    # depth 6n + 2: 19 3x3 convs and the classifier
    n3 = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(n3) == 19
    out = model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert out.shape == (2, 10)
