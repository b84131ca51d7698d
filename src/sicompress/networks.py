"""The networks the study can compress, listed once: VGG11/13/16/19 with BatchNorm and the
CIFAR ResNets of He et al. (2016), each at a width multiplier.

`network_arch(name, ...)` gives the arch dictionary (plain data, `model`) that `model.build_model`
builds and every checkpoint carries, so a saved model rebuilds without the registry. Its
"network" key names the entry; its "features" list holds the extractor's layers:

- VGG (Simonyan and Zisserman 2015, with BatchNorm as in most CIFAR work): 3x3 conv blocks
  (conv + BatchNorm + ReLU, `conv1_1`, ...) and 2x2 max-pools (`pool1`, ...); the last pool
  leaves 512 x 1 x 1 at width 1, read by the classifier (two hidden layers by default).
- ResNet-20/32/56 (He et al. 2016, section 4.2: 6n+2 layers): a 3x3 conv of 16 channels
  (`conv1`), three stages of n basic blocks with 16, 32 and 64 channels (`block1_1`, ...,
  the first block of stages 2 and 3 at stride 2), and a global average pool (`avgpool`,
  64 x 1 x 1). Shortcuts: the identity where the shape is kept, a 1x1 conv + BatchNorm where
  it changes (their option B; option A's zero-padded identity has no weights to prune and
  cannot be traced by a dependency graph). Convs without bias (BatchNorm follows). The
  classifier is a single Linear by default (`model.classifier_hidden: []`).

Every channel count is round(count x width), at least 1.
"""

from __future__ import annotations

from .model import DEFAULT_MEAN, DEFAULT_STD, classifier_spec, output_shape

# VGG: numbers are conv output channels at width 1, "M" a 2x2 max-pool.
VGG_CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}
# ResNet: blocks per stage (depth 6n + 2).
RESNET_BLOCKS = {"resnet20": 3, "resnet32": 5, "resnet56": 9}
RESNET_STAGES = (16, 32, 64)

NETWORKS = tuple(VGG_CONFIGS) + tuple(RESNET_BLOCKS)
TITLES = {"vgg11": "VGG11", "vgg13": "VGG13", "vgg16": "VGG16", "vgg19": "VGG19",
          "resnet20": "ResNet-20", "resnet32": "ResNet-32", "resnet56": "ResNet-56"}


def check_network(name: str) -> str:
    """`name` if the registry has it; an error that lists the registry otherwise."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r} (model.arch); the networks are "
                         f"{list(NETWORKS)}")
    return name


def title(arch_or_name) -> str:
    """How the report names the network of an arch (or a registry name): "VGG16", ...
    An arch without the key is a VGG16 (checkpoints written before the registry)."""
    name = arch_or_name if isinstance(arch_or_name, str) else arch_or_name.get("network", "vgg16")
    return TITLES.get(name, name)


def is_resnet(arch_or_name) -> bool:
    name = arch_or_name if isinstance(arch_or_name, str) else arch_or_name.get("network", "vgg16")
    return name in RESNET_BLOCKS


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def vgg_features(width: float = 1.0, cfg: list | None = None, in_channels: int = 3) -> list[dict]:
    """The layer list of a VGG config (VGG16 by default) with every channel count scaled."""
    if width <= 0:
        raise ValueError(f"model.width must be > 0, got {width}")
    cfg = VGG_CONFIGS["vgg16"] if cfg is None else cfg
    spec, block, idx, c_in = [], 1, 1, in_channels
    for v in cfg:
        if v == "M":
            spec.append({"name": f"pool{block}", "kind": "pool"})
            block, idx = block + 1, 1
        else:
            c_out = _scaled(v, width)
            spec.append({"name": f"conv{block}_{idx}", "kind": "conv", "in": c_in, "out": c_out})
            c_in, idx = c_out, idx + 1
    return spec


def resnet_features(blocks: int, width: float = 1.0, in_channels: int = 3) -> list[dict]:
    """The layer list of a CIFAR ResNet with `blocks` basic blocks per stage."""
    if width <= 0:
        raise ValueError(f"model.width must be > 0, got {width}")
    c = _scaled(RESNET_STAGES[0], width)
    spec = [{"name": "conv1", "kind": "conv", "in": in_channels, "out": c, "bias": False}]
    for s, stage in enumerate(RESNET_STAGES, start=1):
        c_out = _scaled(stage, width)
        for b in range(1, blocks + 1):
            stride = 2 if (s > 1 and b == 1) else 1
            shortcut = "identity" if stride == 1 and c == c_out else "projection"
            spec.append({"name": f"block{s}_{b}", "kind": "block", "in": c, "mid": c_out,
                         "out": c_out, "stride": stride, "shortcut": shortcut})
            c = c_out
    spec.append({"name": "avgpool", "kind": "avgpool"})
    return spec


def network_features(name: str, width: float = 1.0) -> list[dict]:
    check_network(name)
    if name in VGG_CONFIGS:
        return vgg_features(width, VGG_CONFIGS[name])
    return resnet_features(RESNET_BLOCKS[name], width)


def network_arch(name: str = "vgg16", width: float = 1.0, hidden=(512, 512),
                 dropout: float = 0.5, num_classes: int = 10, mean=DEFAULT_MEAN,
                 std=DEFAULT_STD) -> dict:
    """The arch dictionary of registry network `name` with a fresh classifier."""
    features = network_features(name, width)
    c, h, w = output_shape(features)
    return {
        "network": name,
        "features": features,
        "input_shape": [3, 32, 32],
        "classifier": classifier_spec(c * h * w, hidden, dropout, num_classes),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
    }


def vgg_arch(width: float = 1.0, hidden=(512, 512), dropout: float = 0.5, num_classes: int = 10,
             mean=DEFAULT_MEAN, std=DEFAULT_STD) -> dict:
    """VGG16's arch (`network_arch("vgg16", ...)`), the study's default network."""
    return network_arch("vgg16", width, hidden, dropout, num_classes, mean, std)
