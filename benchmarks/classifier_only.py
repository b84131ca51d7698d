"""One classifier-only training, both ways: through the frozen extractor every epoch, against
on its outputs computed once (`sicompress.feature_cache`), side by side in one run.

    python benchmarks/classifier_only.py                     # $CIFAR10_JPEG, else synthetic
    python benchmarks/classifier_only.py --model WORKDIR/results/e2e/model.pt --epochs 30

The training is that of the cpu-real compressed model (config/cpu-real.yaml): VGG16 at width
0.125 cut after conv4_3, 6 of its 64 channels kept, a new classifier with one hidden layer
of 128 units, compress.epochs of that config, SGD at lr 0.05, the split of the study (45,000
train / 5,000 val images). Without --model the extractor has random weights: the time of a
forward pass does not depend on the values of the weights, but the accuracies printed then
mean nothing; give a trained e2e checkpoint for accuracies to compare.

- augmented: `trainings.train_compressed` on the images, cropped and flipped, through the
  frozen extractor in every epoch (classifier_features.source: augmented).
- cached: `feature_cache.cache_features` (the cut layer's outputs for the train and val
  images, once; its time is counted) and then the same training on them (source: cached).

Both test the saved model on the 10,000 test images. The decoding of the archive and the
split are done once, before either, and counted in neither. Prints one row per path and, as
its last line, `speed-up N.Nx`: the augmented path's seconds over the cached path's, cache
included (one training pays the whole cache here; in the study the cut layer's cache serves
the compressed model and all its controls and frontier points).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import yaml

from sicompress import artifacts
from sicompress.trainings import Training, train_compressed
from sicompress.data import prepare_data
from sicompress.feature_cache import cache_features
from sicompress.model import build_model, checkpoint_payload
from sicompress.networks import vgg_arch
from sicompress.splits import load_summary, write_split
from sicompress.engine import TrainSettings

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    real = yaml.safe_load((ROOT / "config" / "cpu-real.yaml").read_text())
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("CIFAR10_JPEG"),
                   help="the JPEG archive or folder (default $CIFAR10_JPEG; none: synthetic)")
    p.add_argument("--model", help="a trained e2e checkpoint (default: random weights)")
    p.add_argument("--width", type=float, default=real["model"]["width"])
    p.add_argument("--cut", default="conv4_3")
    p.add_argument("--k", type=int, default=6)
    p.add_argument("--hidden", type=int, default=real["compress"]["classifier_hidden"][0])
    p.add_argument("--epochs", type=int, default=real["compress"]["epochs"])
    p.add_argument("--dtype", default="float16")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    quiet = lambda m: None  # noqa: E731

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        if a.data:
            prepare_data("folder", a.data, tmp / "data.npz", log=quiet)
        else:
            prepare_data("synthetic", None, tmp / "data.npz", log=quiet,
                         synthetic={"train_per_class": 500, "test_per_class": 100,
                                    "noise": 0.25})
        write_split(tmp / "data.npz", tmp / "split.npz", tmp / "summary.json",
                    val_fraction=0.1, si_fraction=0.1, si_test_fraction=0.1, seed=0, log=quiet)
        prep = time.perf_counter() - t0
        if a.model:
            e2e = Path(a.model)
        else:
            summary = load_summary(tmp / "summary.json")
            torch.manual_seed(0)
            model = build_model(vgg_arch(a.width, [128], 0.3, 10, summary["train_mean"],
                                         summary["train_std"]))
            e2e = tmp / "e2e.pt"
            artifacts.save_torch(e2e, checkpoint_payload(model.eval()))
        arch = torch.load(e2e, weights_only=True)["arch"]
        n_channels = next(l["out"] for l in arch["features"] if l["name"] == a.cut)
        step = n_channels / a.k
        selected = sorted({int(i * step) for i in range(a.k)})  # spread over the layer
        (tmp / "selected.json").write_text(json.dumps(
            {"cut_layer": a.cut, "unit": "channel", "selected": selected,
             "n_candidates": n_channels}))
        (tmp / "cut.json").write_text(json.dumps({"layer": a.cut}))
        files = dict(data_npz=tmp / "data.npz", split_npz=tmp / "split.npz",
                     summary_json=tmp / "summary.json")

        def train(name: str, augment: bool, features=None) -> tuple[float, dict]:
            out = tmp / name
            s = TrainSettings(epochs=a.epochs, lr=0.05, step_size=max(1, round(a.epochs * 0.75)),
                              batch_size=128, seed=0, augment=augment,
                              train_only="classifier", resume_every=1e9)
            t = time.perf_counter()
            m = train_compressed(Training.in_folders(tmp, out, s, log=quiet), e2e_model=e2e,
                                 selected_json=tmp / "selected.json", hidden=[a.hidden],
                                 dropout=0.3, features=features)
            return time.perf_counter() - t, m

        aug_s, aug = train("augmented", True)
        t = time.perf_counter()
        meta = cache_features(source_model=e2e, out_dir=tmp / "cache", cut_json=tmp / "cut.json",
                              dtype=a.dtype, log=quiet, **files)
        cache_s = time.perf_counter() - t
        cached_s, cached = train("cached", False, features=tmp / "cache")

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'real data ' + a.data if a.data else 'synthetic data'}, "
          f"{'trained extractor ' + a.model if a.model else 'random extractor'}; width "
          f"{a.width:g}, cut {a.cut} ({len(selected)} of {n_channels} channels), "
          f"{a.epochs} epochs; data prepared once in {prep:.1f} s (in neither path)")
    print(f"cache: {meta['images']['train']} + {meta['images']['val']} images, "
          f"{meta['bytes'] / 2**20:.1f} MiB ({a.dtype}) for all {n_channels} channels")
    print(f"{'path':<10} {'cache s':>8} {'train s':>8} {'total s':>8} {'val acc':>8} "
          f"{'test acc':>8}")
    for name, c, s, m in (("augmented", 0.0, aug_s, aug), ("cached", cache_s, cached_s, cached)):
        print(f"{name:<10} {c:8.1f} {s:8.1f} {c + s:8.1f} {100 * m['val_acc']:7.2f}% "
              f"{100 * m['test_acc']:7.2f}%")
    print(f"speed-up {aug_s / (cache_s + cached_s):.1f}x")


if __name__ == "__main__":
    main()
