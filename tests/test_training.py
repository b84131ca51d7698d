import math

import pandas as pd
import pytest
import torch

from sicompress.data import make_synthetic
from sicompress.trainings import head_model
from sicompress.splits import make_split
from sicompress.model import build_model, checkpoint_payload
from sicompress.networks import vgg_arch
from sicompress import engine
from sicompress.engine import TrainSettings, augment_batch, fit, scaled_step, to_device_images

from conftest import on_cuda_only


def toy_data(n_per_class=40, classes=4, seed=0):
    """Class-dependent colour patterns plus noise, uint8 (N, 3, 32, 32)."""
    patterns = torch.rand(classes, 3, 4, 4, generator=torch.Generator().manual_seed(123))
    g = torch.Generator().manual_seed(seed)
    patterns = torch.nn.functional.interpolate(patterns, size=32, mode="bilinear")
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = patterns[y] + 0.15 * torch.randn(len(y), 3, 32, 32, generator=g)
    return (x.clamp(0, 1) * 255).to(torch.uint8), y


def tiny_model(classes=4):
    return build_model(vgg_arch(0.0625, hidden=[32], dropout=0.0, num_classes=classes))


def settings(**kw):
    base = dict(epochs=4, lr=0.05, step_size=3, batch_size=32, eval_batch_size=256, seed=0)
    return TrainSettings(**{**base, **kw})


def test_loss_falls_and_beats_chance(device):
    x, y = [t.to(device) for t in toy_data(60)]
    xv, yv = [t.to(device) for t in toy_data(20, seed=1)]
    torch.manual_seed(0)
    res = fit(tiny_model(), (x, y), (xv, yv), settings(epochs=6, batch_size=16, step_size=5),
              log=lambda m: None)
    h = res.history
    assert list(h.columns) == ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds",
                               "images_per_s"]
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert res.best_val_acc > 0.5  # chance is 0.25
    assert res.best_val_acc == h["val_acc"].max()
    assert res.best_epoch == int(h.loc[h["val_acc"].idxmax(), "epoch"])
    # StepLR at 5 epochs: 0.05 for epochs 1-5, 0.005 from epoch 6
    assert math.isclose(h["lr"].iloc[4], 0.05) and math.isclose(h["lr"].iloc[5], 0.005)


def test_learns_the_synthetic_source(device):
    """The project's own synthetic data (what the workflow tests run on) is learnable.

    At lr 0.01, the rate the smoke study's lr search picks on this data. At 0.05 this tiny VGG's
    training loss stalled near 2.0 and its validation accuracy wandered between 0.15 and 0.32
    from epoch to epoch, so whether the best epoch reached 0.25 hung on float rounding: with
    one thread it did not (0.23), with two it did (the thread count changes the order of the
    convolutions' sums, and eight epochs of SGD amplify that)."""
    ds = make_synthetic(100, 20, noise=0.1)
    sp = make_split(ds.y_train, ds.y_test)
    x, y = to_device_images(ds.x_train, device), torch.as_tensor(ds.y_train, device=device)
    tr, va = torch.as_tensor(sp["train"], device=device), torch.as_tensor(sp["val"], device=device)
    torch.manual_seed(0)
    model = build_model(vgg_arch(0.0625, hidden=[16], dropout=0.0))
    res = fit(model, (x[tr], y[tr]), (x[va], y[va]),
              settings(epochs=8, lr=0.01, batch_size=32, step_size=100), log=lambda m: None)
    assert res.history["train_loss"].iloc[-1] < res.history["train_loss"].iloc[0]
    assert res.best_val_acc >= 0.25  # chance is 0.1


def test_same_seed_same_history():  # on the CPU: GPU kernels need not repeat bit for bit
    x, y = toy_data()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        res = fit(tiny_model(), (x, y), (x[:40], y[:40]), settings(epochs=2), log=lambda m: None)
        runs.append(res.history.drop(columns=["seconds", "images_per_s"]))
    pd.testing.assert_frame_equal(runs[0], runs[1])


def test_diverging_lr_is_recorded_not_raised(device):
    x, y = [t.to(device) for t in toy_data()]
    res = fit(tiny_model(), (x, y), (x[:40], y[:40]), settings(lr=1e6, epochs=3),
              log=lambda m: None)
    assert res.diverged
    assert res.diverged_epoch is not None
    assert len(res.history) == res.diverged_epoch  # it stopped there


def test_augment_is_crop_of_padded_and_flip(device):
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 32, 32), dtype=torch.uint8).to(device)
    out = augment_batch(x, 4, g)
    assert out.device == x.device
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(len(x)):  # every output is one of the 81 x 2 crops of its own padded image
        found = any(
            torch.equal(out[i], c) or torch.equal(out[i], c.flip(2))
            for c in (padded[i, :, a:a + 32, b:b + 32] for a in range(9) for b in range(9))
        )
        assert found


def test_head_training_leaves_features_bit_identical(tmp_path, device):
    x, y = [t.to(device) for t in toy_data()]
    e2e = tiny_model()
    fit(e2e, (x, y), (x[:40], y[:40]), settings(epochs=1), log=lambda m: None)
    path = tmp_path / "e2e.pt"
    torch.save(checkpoint_payload(e2e.cpu()), path)
    head = head_model(path, hidden=[16], dropout=0.0, seed=1)
    before = {k: v.clone() for k, v in head.features.state_dict().items()}
    cls_before = {k: v.clone() for k, v in head.classifier.state_dict().items()}
    fit(head, (x, y), (x[:40], y[:40]), settings(epochs=2, train_only="classifier"),
        log=lambda m: None)
    after = {k: v.cpu() for k, v in head.features.state_dict().items()}
    for k, v in before.items():  # weights and BatchNorm running statistics alike
        assert torch.equal(v, after[k]), k
    cls_after = {k: v.cpu() for k, v in head.classifier.state_dict().items()}
    assert any(not torch.equal(v, cls_after[k]) for k, v in cls_before.items())


def test_scaled_step():
    assert scaled_step(50, 20, 200) == 5
    assert scaled_step(1, 5, 200) == 1


# ----------------------------------------------------------------------------------------
# cuDNN's autotuner: on while a training runs on CUDA, as it was afterwards


@pytest.fixture
def benchmark_flag():
    """torch.backends.cudnn.benchmark as it was before the test, restored after it."""
    saved = torch.backends.cudnn.benchmark
    yield
    torch.backends.cudnn.benchmark = saved


def test_cudnn_autotune_on_cuda_only_and_restored(benchmark_flag):
    for before in (False, True):
        torch.backends.cudnn.benchmark = before
        with engine.cudnn_autotune(torch.device("cuda")):  # a flag: no GPU needed to set it
            assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cudnn.benchmark is before
        with engine.cudnn_autotune(torch.device("cpu")):
            assert torch.backends.cudnn.benchmark is before
        assert torch.backends.cudnn.benchmark is before
    torch.backends.cudnn.benchmark = False
    with pytest.raises(RuntimeError, match="stopped"):
        with engine.cudnn_autotune("cuda:0"):
            raise RuntimeError("a training stopped")
    assert torch.backends.cudnn.benchmark is False


class BenchmarkSpy(torch.nn.Module):
    """A model that records torch.backends.cudnn.benchmark at every forward pass, by mode."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.features, self.seen = model, model.features, set()

    def forward(self, x):
        self.seen.add(("train" if self.training else "eval", torch.backends.cudnn.benchmark))
        return self.model(x)


def spied_fit(device):
    x, y = [t.to(device) for t in toy_data(10)]
    spy = BenchmarkSpy(tiny_model())
    fit(spy, (x, y), (x[:20], y[:20]), settings(epochs=2), log=lambda m: None)
    return spy.seen


def test_fit_leaves_cudnn_benchmark_alone_off_cuda(benchmark_flag):
    torch.backends.cudnn.benchmark = False
    assert spied_fit(torch.device("cpu")) == {("train", False), ("eval", False)}
    assert torch.backends.cudnn.benchmark is False


@on_cuda_only("cuDNN's autotuner is for CUDA trainings")
def test_fit_autotunes_cudnn_on_cuda_and_restores_it(device, benchmark_flag):
    torch.backends.cudnn.benchmark = False
    assert spied_fit(device) == {("train", True), ("eval", True)}
    assert torch.backends.cudnn.benchmark is False  # SI's forward passes after it: as before

