"""Cached features of a frozen extractor (`feature_cache`): what is stored, against the model's
own layer output (`activations.layer_activations`); and a classifier trained on them, against
the same classifier trained through the frozen extractor on the images, augmentation off,
same seed."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import random_batchnorm, synthetic_study
from sicompress import artifacts
from sicompress.trainings import Training, train_compressed
from sicompress.feature_cache import (CachedClassifier, check_against, load_features,
                                      write_features)
from sicompress.activations import layer_activations
from sicompress.model import build_model, checkpoint_payload, load_model
from sicompress.networks import vgg_arch
from sicompress.splits import load_study_data
from sicompress.trainings import train_head
from sicompress.engine import TrainSettings, forward_format

CUT = "conv3_1"      # 16 channels of 8x8 at width 0.0625
KEPT = [11, 2, 7, 5]  # in selection order; the compressed model holds them ascending


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A synthetic study and an 'e2e' checkpoint with random weights and BatchNorm statistics
    (so that eval-mode BatchNorm is not the identity)."""
    d = synthetic_study(tmp_path_factory.mktemp("cache"), train_per_class=30, si_fraction=0.2)
    torch.manual_seed(3)
    model = random_batchnorm(build_model(vgg_arch(0.0625, hidden=[16], dropout=0.0)),
                             spread=0.3, affine=False)
    artifacts.save_torch(d / "e2e.pt", checkpoint_payload(model))
    selected = {"cut_layer": CUT, "unit": "channel", "selected": KEPT, "n_candidates": 16}
    (d / "selected.json").write_text(json.dumps(selected))
    return d


def data(d, device):
    return load_study_data(d / "data.npz", d / "split.npz", d / "summary.json", device)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_stored_values_are_the_layer_output(study, tmp_path, dtype, device):
    """Every split's file holds the cut layer's output (the layer SI reader's, computed apart)
    of the split's images in order, rounded to the storage type; reading some channels gives
    exactly those channels, flattened as the model flattens."""
    model = load_model(study / "e2e.pt").to(device)
    sd = data(study, device)
    meta = write_features(model, CUT, {"train": sd.train, "val": sd.val}, tmp_path,
                          dtype=dtype, batch_size=7, log=lambda m: None)
    assert meta["shape"] == [16, 8, 8] and meta["images"] == {"train": 270, "val": 30}
    chans = sorted(KEPT)
    got = load_features(tmp_path, device, channels=chans)
    # train in the storage type; val always in float32, the very numbers the test pass makes
    for (x, y), (xi, yi), stored in ((got.train, sd.train, dtype), (got.val, sd.val, "float32")):
        want = layer_activations(model, xi, CUT)[:, chans]  # (N, 4, 8, 8)
        want = torch.flatten(want.to(getattr(torch, stored)), 1)
        assert x.dtype == getattr(torch, stored)
        if device.type == "cpu":
            assert torch.equal(x.float(), want.float())
        else:  # the cache runs as the engine evaluates (TF32 as it leaves it), the reader exact
            assert torch.allclose(x.float(), want.float(), rtol=2e-3, atol=2e-3)
        assert torch.equal(y, yi)
    whole = load_features(tmp_path, device)
    assert whole.train[0].shape == (270, 16 * 64)


def test_a_cache_of_another_model_is_refused(study, tmp_path, device):
    sd = data(study, device)
    other = build_model(vgg_arch(0.0625, hidden=[16], dropout=0.0)).to(device)  # other weights
    write_features(other, CUT, {"train": sd.train, "val": sd.val}, tmp_path,
                   log=lambda m: None)
    model = load_model(study / "e2e.pt").to(device)
    model.features = model.features[:7]  # up to conv3_1, every channel
    model.arch["features"] = model.arch["features"][:7]
    cached = load_features(tmp_path, device)
    with pytest.raises(ValueError, match="another model"):
        check_against(model, cached, sd.val[0])
    with pytest.raises(ValueError, match="not channels"):
        load_features(tmp_path, device, channels=[16])


@pytest.mark.parametrize("bf16", [False, True])
def test_val_features_are_what_the_test_pass_computes(study, tmp_path, device, bf16):
    """A classifier-only training picks its best epoch on the cached val features and is
    tested through the whole saved model: both must be the same numbers. The classifier's
    logits on the cached val features equal the whole model's on the val images, computed as
    the engine's evaluation computes them (bf16 autocast where the device has it). Stored as
    float16 (the default), as the cache once stored val too, they differ."""
    model = load_model(study / "e2e.pt").to(device)
    sd = data(study, device)
    fmt = forward_format(device, bf16=bf16, channels_last=bf16)
    write_features(model, None, {"train": sd.train, "val": sd.val}, tmp_path, dtype="float16",
                   fmt=fmt, log=lambda m: None)
    got = load_features(tmp_path, device)
    assert got.meta["val_dtype"] == "float32" and got.meta["format"]["bf16"] == fmt.bf16
    model.eval()
    images = sd.val[0]
    if fmt.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), fmt.autocast(device):
        whole = model(images).float()                          # the test pass's computation
        cached = CachedClassifier(model.classifier)(got.val[0]).float()
        rounded = CachedClassifier(model.classifier)(got.val[0].half()).float()
    if device.type == "cpu":
        assert torch.equal(cached, whole)
    else:
        assert torch.allclose(cached, whole, rtol=1e-2, atol=1e-2)
    assert not torch.equal(rounded, whole)  # float16 val features: another model's numbers
    assert check_against(model, got, sd.val[0]) <= 1e-5 or fmt.bf16


def test_a_float16_overflow_is_a_clear_error(study, tmp_path, device):
    model = load_model(study / "e2e.pt").to(device)
    with torch.no_grad():  # the last conv's BatchNorm scaled so that outputs pass 65,504
        model.features[6].bn.weight.mul_(1e6)
        model.features[6].bn.bias.fill_(1e6)
    sd = data(study, device)
    with pytest.raises(ValueError, match=r"features at conv3_1 are not finite once stored as "
                                         r"float16: the largest output is .*65,504.*"
                                         r"classifier_features.dtype: bfloat16 or float32"):
        write_features(model, CUT, {"train": sd.train, "val": sd.val}, tmp_path / "f16",
                       dtype="float16", log=lambda m: None)
    meta = write_features(model, CUT, {"train": sd.train, "val": sd.val}, tmp_path / "f32",
                          dtype="float32", log=lambda m: None)
    assert meta["dtype"] == "float32"


def test_features_inputs_are_classifier_only_without_augmentation():
    with pytest.raises(ValueError, match="augment False"):
        TrainSettings(inputs="features", train_only="classifier", augment=True)
    with pytest.raises(ValueError, match="train_only"):
        TrainSettings(inputs="features", train_only="all", augment=False)
    with pytest.raises(ValueError, match="inputs must be"):
        TrainSettings(inputs="pixels")


def _train(fn, study, out, device, features=None, **kw):
    s = TrainSettings(epochs=3, lr=0.05, step_size=2, batch_size=32, seed=5, augment=False,
                      train_only="classifier")
    t = Training.in_folders(study, out, s, device=str(device), log=lambda m: None)
    metrics = fn(t, dropout=0.3, features=features, **kw)
    return metrics, load_model(out / "model.pt"), pd.read_csv(out / "history.csv"), \
        np.load(out / "predictions.npz")["predicted"]


@pytest.mark.parametrize("which", ["compressed", "head"])
def test_cached_training_equals_training_through_the_extractor(study, tmp_path, which, device):
    """Same seed, no augmentation, dropout on: the classifier trained on the cached float32
    features and the one trained on the images through the frozen extractor end with the
    same weights, history, test accuracy and predictions (to float tolerance)."""
    if which == "compressed":
        fn, kw, layer = train_compressed, dict(e2e_model=study / "e2e.pt",
                                               selected_json=study / "selected.json",
                                               hidden=[16]), CUT
    else:
        fn, kw, layer = train_head, dict(e2e_model=study / "e2e.pt", hidden=[16]), None
    sd = data(study, device)
    cache = tmp_path / "cache"
    write_features(load_model(study / "e2e.pt").to(device), layer,
                   {"train": sd.train, "val": sd.val}, cache, dtype="float32",
                   log=lambda m: None)
    m_img, model_img, h_img, p_img = _train(fn, study, tmp_path / "images", device, **kw)
    m_fea, model_fea, h_fea, p_fea = _train(fn, study, tmp_path / "cached", device,
                                            features=cache, **kw)
    assert m_img["inputs"] == "images" and m_fea["inputs"] == "cached"
    assert m_fea["settings"]["inputs"] == "features" and m_img["settings"]["inputs"] == "images"
    cols = ["train_loss", "train_acc", "val_loss", "val_acc"]
    assert np.allclose(h_img[cols].to_numpy(), h_fea[cols].to_numpy(), rtol=1e-5, atol=1e-6)
    assert h_img["train_loss"].iloc[-1] < h_img["train_loss"].iloc[0]  # it did learn
    s_img, s_fea = model_img.state_dict(), model_fea.state_dict()
    assert list(s_img) == list(s_fea)
    for k in s_img:
        assert torch.allclose(s_img[k].float(), s_fea[k].float(), rtol=1e-4, atol=1e-6), k
    assert np.array_equal(p_img, p_fea)
    assert m_img["test_acc"] == m_fea["test_acc"] and m_img["best_epoch"] == m_fea["best_epoch"]
    # the extractor of the saved model is e2e's, untouched
    e2e = load_model(study / "e2e.pt").state_dict()
    for k, v in s_fea.items():
        if k.startswith("features.") and fn is train_head:
            assert torch.equal(v, e2e[k]), k


def test_cached_classifier_shares_the_model_classifier():
    model = build_model(vgg_arch(0.0625, hidden=[8], dropout=0.0))
    net = CachedClassifier(model.classifier)
    x = torch.randn(3, 32, 1, 1)
    assert torch.equal(net(x.half()), model.classifier(x.half().float()))
    assert net.classifier is model.classifier
