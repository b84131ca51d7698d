"""The trainings of the study, each from files to files: (a) end-to-end, (b) frozen features,
(c) the compressed model, its controls (other selectors and sizes, repeats, from scratch,
fine-tuned) and the layer-wise pruned models. The decisions they train (the cut, the channels,
the width) are made apart (`compression`, `layerwise`); the loop itself is `engine.fit`.

Every training writes the same four artefacts: `model.pt` (best epoch by validation
accuracy), `history.csv`, `metrics.json` and `curves.png`. The test set is touched once per
training, after it ends, to test the best model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import artifacts, figures
from .activations import subset_images
from .compression import control_channels
from .criteria import criterion
from .scoring import training_batch
from .feature_cache import CachedClassifier, check_against, load_features
from .cost import macs_per_image, parameter_counts
from .layerwise import hidden_separation, pruned_network
from .model import Network, build_model, checkpoint_payload, classifier_spec, load_checkpoint, load_model
from .networks import network_arch
from .pruning import (arch_and_state, build_compressed, build_whole_pruned, compressed_arch,
                      group_sizes, whole_pruned_arch)
from .si import PRECISION
from .splits import StudyData, load_study_data
from .devices import pick_device
from .engine import (DivergedError, FitResult, TrainSettings, evaluate, fit, forward_format,
                       scaled_step, settings_from_config)

RESUME_FILE = "resume.pt"  # the resumable state of a running training, beside its metrics.json


@dataclass(frozen=True)
class Training:
    """One training's record: where it reads the study's data, where it writes its
    artefacts, and how it trains. Every training function takes one, beside the few
    arguments of its own (the source model, the channels, the classifier).

    data, split, summary: the study's data.npz, split.npz and summary.json.
    model, history, metrics, curves, predictions: its artefacts (model.pt, history.csv,
      metrics.json, curves.png, predictions.npz; None: no checkpoint / no predictions).
    settings: the schedule and seed (`engine.TrainSettings`).
    config: the study's config, kept in metrics.json's provenance.
    device: where to train (None: the best one there is, `devices.pick_device`).
    """

    data: str | Path
    split: str | Path
    summary: str | Path
    model: str | Path | None
    history: str | Path
    metrics: str | Path
    curves: str | Path
    settings: TrainSettings
    predictions: str | Path | None = None
    config: dict | None = None
    device: str | None = None
    log: Callable[[str], None] = print

    @classmethod
    def in_folders(cls, data_dir: str | Path, out_dir: str | Path, settings: TrainSettings,
                   **fields) -> "Training":
        """The record of a training on the study files of `data_dir` (data.npz, split.npz,
        summary.json) writing the usual file names into `out_dir`; `fields` replace any of
        them (predictions=None: none written) and set the others (device, config, log)."""
        d, o = Path(data_dir), Path(out_dir)
        files = dict(data=d / "data.npz", split=d / "split.npz", summary=d / "summary.json",
                     model=o / "model.pt", history=o / "history.csv",
                     metrics=o / "metrics.json", curves=o / "curves.png",
                     predictions=o / "predictions.npz")
        return cls(settings=settings, **{**files, **fields})

    def study_data(self) -> StudyData:
        """The study's images on the training's device, split and normalised."""
        return load_study_data(self.data, self.split, self.summary,
                               pick_device(self.device, log=self.log))


def run_training(model: Network, data: StudyData, job: Training, *, title: str,
                 extra_metrics: dict | None = None, fail_on_divergence: bool = True,
                 resume: bool = True, features: str | Path | None = None,
                 channels: list[int] | None = None) -> dict:
    """Fit, restore the best epoch, test it once, write the artefacts of `job`; return the
    metrics.

    features: a folder of cached outputs of the model's frozen extractor (`feature_cache`;
    a classifier-only training): the classifier is trained on them, `channels` of them (None:
    all), without augmentation, and the saved model (extractor and classifier) is tested on
    the test images as in the other path. None: the images go through the whole model.
    resume: keep a resumable state, `resume.pt` beside job.metrics (written at epoch ends, at
    most every `settings.resume_every` seconds: see `fit`), continue from it when it is
    there, and remove it once every artefact is written.
    """
    settings, log = job.settings, job.log
    history, metrics, curves = job.history, job.metrics, job.curves
    checkpoint, predictions, config = job.model, job.predictions, job.config
    state_file = Path(metrics).with_name(RESUME_FILE) if resume else None
    net, train, val, inputs = model, data.train, data.val, "images"
    if features is not None:
        if settings.train_only != "classifier":
            raise ValueError(f"{title}: cached features serve classifier-only trainings; "
                             f"settings.train_only is {settings.train_only!r}")
        settings = replace(settings, inputs="features", augment=False)
        cached = load_features(features, data.train[0].device, channels=channels)
        if len(cached.train[0]) != len(data.train[0]) or len(cached.val[0]) != len(data.val[0]):
            raise ValueError(f"{features}: {len(cached.train[0])} train / {len(cached.val[0])} "
                             f"val images cached, the split has {len(data.train[0])} / "
                             f"{len(data.val[0])}: the cache is of another split")
        check_against(model, cached, data.val[0])
        net, train, val = CachedClassifier(model.classifier), cached.train, cached.val
        inputs = (f"cached features of {cached.meta['layer']} ({features}, "
                  f"{cached.meta['dtype']}, {train[0].shape[1]} values per image)")
    log(f"{title}: {len(train[0])} train / {len(val[0])} val images on "
        f"{train[0].device}, {settings.epochs} epochs, lr {settings.lr:g}, "
        f"step {settings.step_size}, parameters {parameter_counts(model)}; inputs: {inputs}")
    result: FitResult = fit(net, train, val, settings, log=log, resume=state_file)
    with artifacts.atomic_path(history) as tmp:
        result.history.to_csv(tmp, index=False)
    figures.plot_curves(result.history, curves, title=title, best_epoch=result.best_epoch,
                        train_label="train (augmented)" if settings.augment else
                        "train (cached features)" if features is not None else "train")
    if result.diverged and fail_on_divergence:
        raise DivergedError(f"{title}: training loss became non-finite at epoch "
                            f"{result.diverged_epoch} with lr {settings.lr:g}; "
                            "choose a smaller learning rate")
    net.load_state_dict(result.best_state)
    model.to(data.test[0].device)
    # tested as the validation passes ran and as the latency table times it (`forward_format`)
    fmt = forward_format(data.test[0].device, bf16=settings.bf16,
                         channels_last=settings.channels_last)
    if fmt.channels_last:
        model.to(memory_format=torch.channels_last)
    test_loss, test_acc, predicted = (float("nan"), float("nan"), None)
    if not result.diverged or result.best_epoch > 0 or predictions is not None:
        # one pass over the test images gives the metrics and the predictions
        test_loss, test_acc, predicted = evaluate(model, *data.test,
                                                  batch_size=settings.eval_batch_size,
                                                  bf16=fmt.bf16, channels_last=fmt.channels_last,
                                                  predictions=True)
        if result.diverged and result.best_epoch == 0:
            test_loss, test_acc = (float("nan"), float("nan"))
    out = {
        "title": title,
        "best_epoch": result.best_epoch,
        "val_acc": result.best_val_acc,
        "val_loss": result.best_val_loss,
        "test_acc": test_acc,
        "test_loss": test_loss,
        "diverged": result.diverged,
        "diverged_epoch": result.diverged_epoch,
        "epochs_run": len(result.history),
        "train_seconds": result.seconds,
        "parameters": parameter_counts(model),
        "lr": settings.lr,
        "step_size": settings.step_size,
        "inputs": "cached" if features is not None else "images",
        # the training's budget: epochs x images through the trained layers
        "images_seen": len(result.history) * len(train[0]),
        **(extra_metrics or {}),
        "settings": result.settings,
        "provenance": artifacts.provenance(config, settings.seed),
    }
    if predictions is not None:
        write_predictions(predictions, data.test[1], predicted)
    if checkpoint is not None:
        payload = checkpoint_payload(model.cpu(), metrics={k: v for k, v in out.items()
                                                           if k not in ("provenance", "settings")},
                                     provenance=out["provenance"], settings=result.settings)
        artifacts.save_torch(checkpoint, _plain(payload))
    artifacts.write_json(metrics, out)
    if state_file is not None:
        state_file.unlink(missing_ok=True)
    log(f"{title}: best epoch {result.best_epoch}, val acc {100 * result.best_val_acc:.2f}%, "
        f"test acc {100 * test_acc:.2f}%")
    return out


def write_predictions(path: str | Path, labels: torch.Tensor, predicted: torch.Tensor) -> None:
    """predictions.npz: `label` and `predicted` (int64, the test set in its stored order), so
    that two models can be compared image by image (`stats.mcnemar_exact`)."""
    with artifacts.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, label=labels.cpu().numpy().astype(np.int64),
                     predicted=predicted.cpu().numpy().astype(np.int64))


def _plain(obj):
    """Drop Python objects weights_only loading would refuse (keep dict/list/str/num/tensor)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, str):
        return str(obj)  # also str subclasses such as torch's version string
    if obj is None or isinstance(obj, (bool, int, float, torch.Tensor)):
        return obj
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def e2e_settings(train: dict, best: dict, seed: int, compute: dict | None = None,
                 epochs: int | None = None) -> TrainSettings:
    """Settings of an end-to-end training (e2e, and the compressed architecture from scratch):
    config["train"] at the search's lr and step (best.json); epochs: another length than
    train["epochs"], the search's step (in epochs of e2e's schedule) scaled to it."""
    if epochs is None or int(epochs) == int(train["epochs"]):
        return settings_from_config(train, seed, compute=compute, lr=best["lr"],
                                    step_size=best["step_size"])
    return settings_from_config(train, seed, compute=compute, lr=best["lr"], epochs=int(epochs),
                                step_size=scaled_step(best["step_size"], int(epochs),
                                                      train["epochs"]))


def classifier_settings(section: dict, best: dict, train: dict, seed: int,
                        compute: dict | None = None) -> TrainSettings:
    """Settings of a classifier-only training (head, compressed) from its config section.

    section: config["head"] or config["compress"] (epochs, lr, step_size); best: the search's
    best.json; train: config["train"]; compute: config["compute"]. lr null: the search's lr;
    step_size null: the search's step, given in epochs of the full schedule, scaled to
    section["epochs"].
    """
    epochs = section["epochs"]
    step = section.get("step_size") or scaled_step(best["step_size"], epochs, train["epochs"])
    return settings_from_config(train, seed, compute=compute, epochs=epochs,
                                lr=section.get("lr") or best["lr"], step_size=step,
                                train_only="classifier")


# ----------------------------------------------------------------------------------------
# (a) end-to-end and (b) frozen features


def train_e2e(t: Training, *, width: float, hidden, dropout: float,
              network: str = "vgg16") -> dict:
    """(a) The network (`networks`: model.arch, VGG16 by default) from random initial
    weights, every layer trained."""
    data = t.study_data()
    torch.manual_seed(t.settings.seed)
    model = build_model(network_arch(network, width, hidden, dropout, len(data.classes),
                                     data.mean, data.std))
    return run_training(model, data, t, title="end-to-end (a)",
                        extra_metrics={"network": network, "width": width,
                                       "classes": data.classes})


def head_model(e2e_checkpoint: str | Path, hidden, dropout: float, seed: int) -> Network:
    """The e2e feature extractor with a new, freshly initialised classifier, on the CPU."""
    ckpt = load_checkpoint(e2e_checkpoint)
    arch = dict(ckpt["arch"])
    old = arch["classifier"]
    arch["classifier"] = classifier_spec(old["in_features"], hidden, dropout, old["num_classes"])
    torch.manual_seed(seed)
    model = build_model(arch)
    feats = {k[len("features."):]: v for k, v in ckpt["state_dict"].items()
             if k.startswith("features.")}
    model.features.load_state_dict(feats)
    norm = {k[len("normalize."):]: v for k, v in ckpt["state_dict"].items()
            if k.startswith("normalize.")}
    model.normalize.load_state_dict(norm)
    return model


def train_head(t: Training, *, e2e_model, hidden, dropout: float, features=None) -> dict:
    """(b) The e2e feature extractor frozen (BatchNorm in eval mode), a new classifier trained
    (on e2e's cached features when `features` names their folder)."""
    _trains(t, "classifier", "train_head")
    data = t.study_data()
    model = head_model(e2e_model, hidden, dropout, t.settings.seed)
    return run_training(model, data, t, title="frozen features (b)", features=features,
                        extra_metrics={"source_model": str(e2e_model), "classes": data.classes})


# ----------------------------------------------------------------------------------------
# (c) The compressed model, its controls (other selectors, other sizes, repeats, from
# scratch, fine-tuning) and the layer-wise pruned models: trained like (c)


def _train_pruned(model, t: Training, *, e2e_model, sel: dict, kept: list[int] | dict,
                  title: str, extra: dict, features=None) -> dict:
    """Train a model of the compressed architecture and write the usual artefacts, with the
    compression's description and MACs in metrics.json. kept: the cut layer's channels, or
    (layer-wise pruning) {conv: channels}, whose k and n_candidates are totals over layers.
    features: the folder of the frozen extractor's cached outputs (classifier only): the
    cut layer's, of which the kept channels are read (unit "channel"), or the layer-wise
    pruned extractor's own, read whole."""
    before = macs_per_image(load_checkpoint(e2e_model)["arch"])
    after = macs_per_image(model.arch)
    channels = None  # of the cached features: all (layer-wise, unit "element")
    if isinstance(kept, dict):
        k, kept = sum(len(v) for v in kept.values()), {n: sorted(v) for n, v in kept.items()}
    else:
        k, kept = len(kept), sorted(kept)
        if sel["unit"] == "channel" and model.arch["classifier"].get("input_index") is None:
            channels = kept  # ascending: the order the compressed extractor holds them in
        # else (a ResNet stage's channels: the classifier selects them) every cached value
    t.log(f"{title}: cut after {sel['cut_layer']}, {k} of {sel['n_candidates']} "
          f"{sel['unit']}s; MACs per image {before['total']:,} -> {after['total']:,}")
    data = t.study_data()
    compression = {"cut_layer": sel["cut_layer"], "unit": sel["unit"], "k": k,
                   "n_candidates": sel["n_candidates"], "kept": kept, **extra}
    return run_training(model, data, t, title=title, features=features,
                        channels=channels if features is not None else None,
                        extra_metrics={"compression": compression,
                                       "macs": {k: after[k] for k in ("features", "classifier",
                                                                       "total")},
                                       "source_model": str(e2e_model), "classes": data.classes})


def _trains(t: Training, layers: str, what: str) -> None:
    """Refuse settings that train other layers than `what` does ("classifier" or "all")."""
    if t.settings.train_only != layers:
        raise ValueError(f"{what} trains {'the classifier only' if layers == 'classifier' else 'every layer'}: "
                         f"settings.train_only must be {layers!r}")


def train_compressed(t: Training, *, e2e_model, selected_json, hidden, dropout: float,
                     features=None) -> dict:
    """(c) The cut, pruned e2e extractor frozen, a new classifier for k x H x W inputs trained
    (on the cut layer's cached features when `features` names their folder)."""
    _trains(t, "classifier", "train_compressed")
    sel = artifacts.read_json(selected_json)
    model = build_compressed(e2e_model, sel["cut_layer"], sel["unit"], sel["selected"],
                             hidden=hidden, dropout=dropout, seed=t.settings.seed)
    extra = {"selector": "si", "fraction": None, "repeat": 0, "seed": t.settings.seed}
    return _train_pruned(model, t, e2e_model=e2e_model, sel=sel, kept=sel["selected"],
                         title="compressed (c)", extra=extra, features=features)


def train_control(t: Training, *, e2e_model, cut_json, ranking_csv, selector: str,
                  fraction: float | None, repeat: int, hidden, dropout: float,
                  features=None) -> dict:
    """One classifier-only training of the controls, trained like (c): the features `selector`
    keeps (at the study's k, or at a frontier fraction; see `control_channels`), a new
    classifier whose weights and batch order come from `settings.seed` (the study's seed +
    repeat; the random selector draws its channels with that seed too)."""
    _trains(t, "classifier", "train_control")
    seed = t.settings.seed
    # a criterion's batch of images is drawn with the study's seed: one choice for all repeats
    batch = training_batch(t.data, t.split, seed=seed - repeat) \
        if criterion(selector).needs_batch else None
    chosen, sel = control_channels(e2e_model=e2e_model, cut_json=cut_json,
                                   ranking_csv=ranking_csv, selector=selector,
                                   fraction=fraction, seed=seed, batch=batch)
    model = build_compressed(e2e_model, sel["cut_layer"], sel["unit"], chosen, hidden=hidden,
                             dropout=dropout, seed=seed)
    size = "the chosen k" if fraction is None else f"fraction {fraction:g}"
    extra = {"selector": selector, "fraction": fraction, "repeat": repeat, "seed": seed,
             "selected": chosen}
    return _train_pruned(model, t, e2e_model=e2e_model, sel=sel, kept=chosen,
                         title=f"{selector} at {size}, repeat {repeat}", extra=extra,
                         features=features)


def train_scratch(t: Training, *, e2e_model, selected_json, hidden, dropout: float) -> dict:
    """The compressed architecture (the cut prefix, the kept channels, a new classifier)
    trained end to end from random weights: is the pruned e2e extractor worth anything?"""
    _trains(t, "all", "train_scratch")
    sel = artifacts.read_json(selected_json)
    arch, _ = arch_and_state(e2e_model)
    new_arch = compressed_arch(arch, sel["cut_layer"], sel["unit"], sel["selected"], hidden,
                               dropout)
    torch.manual_seed(t.settings.seed)
    model = build_model(new_arch)  # random weights; normalisation from the arch
    extra = {"selector": "si", "fraction": None, "repeat": 0, "seed": t.settings.seed,
             "from_scratch": True}
    return _train_pruned(model, t, e2e_model=e2e_model, sel=sel, kept=sel["selected"],
                         title="compressed architecture from scratch", extra=extra)


def finetune(t: Training, *, compressed_model, e2e_model) -> dict:
    """The trained compressed model, then every layer trained (fine-tuning; the caller sets
    the lr, the search's x 0.1 in the study)."""
    _trains(t, "all", "finetune")
    ckpt = load_checkpoint(compressed_model)
    model = load_model(compressed_model)
    comp = ckpt["arch"]["compression"]
    candidates = comp["candidates"]  # layer-wise: {conv: channels before}
    sel = {"cut_layer": comp["cut_layer"], "unit": comp["unit"],
           "n_candidates": sum(candidates.values()) if isinstance(candidates, dict)
           else candidates}
    start = ckpt.get("metrics", {}).get("compression", {})  # the classifier-only run's record
    extra = {"selector": start.get("selector", "si"), "fraction": None,
             "repeat": start.get("repeat", 0), "seed": t.settings.seed,
             "finetuned_from": str(compressed_model)}
    if comp.get("method"):
        extra["method"] = comp["method"]
    title = (f"layer-wise pruned, fine-tuned ({extra['selector']}, repeat {extra['repeat']})"
             if comp.get("method") else "compressed (c), fine-tuned")
    return _train_pruned(model, t, e2e_model=e2e_model, sel=sel, kept=comp["kept"],
                         title=title, extra=extra)


def train_layerwise(t: Training, *, e2e_model, pruned_json, kept_json, repeat: int, width: int,
                    dropout: float, hidden_si_json=None, si_batch_size: int = 500,
                    features=None) -> dict:
    """A new classifier (one hidden layer of `width` units) on the frozen layer-wise pruned
    extractor, classifier only, like (c). The channels of each group are those of
    `kept_json` (the layer-wise SI choice, or another criterion's at the same counts:
    `layerwise.write_kept`); the classifier's weights and batch order come from
    settings.seed. hidden_si_json: also write the SI and Center SI of the trained hidden
    layer on si_train (the width's design)."""
    _trains(t, "classifier", "train_layerwise")
    pruned = artifacts.read_json(pruned_json)
    cut = pruned["cut_layer"]
    choice = artifacts.read_json(kept_json)
    selector, kept = choice["criterion"], choice["kept"]
    dev = pick_device(t.device)
    model = pruned_network(e2e_model, pruned, choice, seed=t.settings.seed, hidden=[width],
                           dropout=dropout, data_npz=t.data, split_npz=t.split,
                           batch_size=si_batch_size, device=dev, log=t.log)
    sel = {"cut_layer": cut, "unit": "channel", "n_candidates": pruned["channels_before"]}
    extra = {"method": "layerwise", "selector": selector, "fraction": None, "repeat": repeat,
             "seed": t.settings.seed, "width": width}
    out = _train_pruned(model, t, e2e_model=e2e_model, sel=sel, kept=kept,
                        title=f"layer-wise pruned, {selector}, width {width}, repeat {repeat}",
                        extra=extra, features=features)
    if hidden_si_json is not None:
        images, labels = subset_images(t.data, t.split, "si_train")
        trained = load_model(t.model, map_location=dev)
        h = hidden_separation(trained, images, labels, batch_size=si_batch_size, device=dev)
        h.update(test_acc=out["test_acc"], val_acc=out["val_acc"],
                 parameters=out["parameters"]["total"], macs=out["macs"]["total"],
                 provenance=artifacts.provenance(settings={"model": str(t.model),
                                                           "subset": "si_train",
                                                           "precision": PRECISION}))
        artifacts.write_json(hidden_si_json, h)
        t.log(f"width {width}: hidden layer on si_train: SI {h['si']:.4f}, Center SI "
              f"{h['center_si']:.4f}")
    return out


def train_layerwise_scratch(t: Training, *, layerwise_model, e2e_model, repeat: int) -> dict:
    """The layer-wise pruned architecture (its channels per conv and its classifier, as in
    `layerwise_model`) trained end to end from random weights initialised by settings.seed
    (the study's seed + repeat): what the pruning is worth against the architecture alone
    (Liu et al. 2019). One architecture serves every selector: their counts are the same."""
    _trains(t, "all", "train_layerwise_scratch")
    arch = load_checkpoint(layerwise_model)["arch"]
    comp = arch.get("compression") or {}
    if comp.get("method") != "layerwise":
        raise ValueError(f"{layerwise_model} is not a layer-wise pruned model (its compression "
                         f"record is {comp or 'missing'})")
    torch.manual_seed(t.settings.seed)
    model = build_model(arch)  # random weights; the source's normalisation from the arch
    sel = {"cut_layer": comp["cut_layer"], "unit": "channel",
           "n_candidates": sum(comp["candidates"].values())}
    extra = {"method": "layerwise", "selector": "architecture", "fraction": None,
             "repeat": repeat, "seed": t.settings.seed, "from_scratch": True,
             "architecture_of": str(layerwise_model)}
    return _train_pruned(model, t, e2e_model=e2e_model, sel=sel, kept=comp["kept"],
                         title=f"layer-wise pruned architecture from scratch, repeat {repeat}",
                         extra=extra)


# ----------------------------------------------------------------------------------------
# The criteria benchmark (`benchmark`): the whole network pruned by one criterion at one
# allocation, fine-tuned; the uniform-width network from scratch


def finetune_whole(t: Training, *, kept_json, e2e_model, repeat: int) -> dict:
    """The whole e2e network with every group pruned to the channels of `kept_json`
    (`benchmark.choose_channels`; its own classifier sliced, `pruning.build_whole_pruned`),
    every weight e2e's, then every layer trained with settings (the fine-tune's schedule and
    the seed of its repeat, shared by every criterion's repeat: the pairing)."""
    _trains(t, "all", "finetune_whole")
    choice = artifacts.read_json(kept_json)
    model = build_whole_pruned(e2e_model, choice["kept"])
    comp = model.arch["compression"]
    sel = {"cut_layer": comp["cut_layer"], "unit": "channel",
           "n_candidates": sum(comp["candidates"].values())}
    extra = {"method": "channels", "selector": choice["criterion"],
             "allocation": choice["allocation"], "budget": choice["budget"], "fraction": None,
             "repeat": repeat, "seed": t.settings.seed, "choice": str(kept_json)}
    title = (f"{choice['criterion']} at {choice['allocation']} counts, budget "
             f"{choice['budget']:g}, fine-tuned, repeat {repeat}")
    return _train_pruned(model, t, e2e_model=e2e_model, sel=sel, kept=choice["kept"],
                         title=title, extra=extra)


def finetune_unpruned(t: Training, *, e2e_model, repeat: int) -> dict:
    """e2e with nothing removed (every channel of every group kept, through the same
    `pruning.build_whole_pruned` as the pruned networks), every layer trained with settings
    (the benchmark's fine-tune and the seed of its repeat): the reference that has trained as
    long as every fine-tuned network, against which pruning's cost is read (paired by seed)."""
    _trains(t, "all", "finetune_unpruned")
    kept = {g: list(range(n)) for g, n in group_sizes(load_checkpoint(e2e_model)["arch"]).items()}
    model = build_whole_pruned(e2e_model, kept)
    comp = model.arch["compression"]
    sel = {"cut_layer": comp["cut_layer"], "unit": "channel",
           "n_candidates": sum(comp["candidates"].values())}
    extra = {"method": "channels", "selector": "unpruned", "allocation": "unpruned",
             "budget": 1.0, "fraction": None, "repeat": repeat, "seed": t.settings.seed}
    return _train_pruned(model, t, e2e_model=e2e_model, sel=sel, kept=kept,
                         title=f"e2e unpruned, fine-tuned, repeat {repeat}", extra=extra)


def train_counts_scratch(t: Training, *, allocations_json, allocation: str, e2e_model,
                         repeat: int) -> dict:
    """The whole network at `allocation`'s counts per group (its own classifier) trained end
    to end from random weights initialised by settings.seed: Liu et al.'s (2019) control of
    the fine-tunes at the same architecture. Which channels are kept does not matter (random
    weights); the first k of each group are named."""
    _trains(t, "all", "train_counts_scratch")
    alloc = artifacts.read_json(allocations_json)
    counts = alloc["allocations"][allocation]["counts"]
    kept = {g: list(range(int(k))) for g, k in counts.items()}
    arch = whole_pruned_arch(load_checkpoint(e2e_model)["arch"], kept)
    torch.manual_seed(t.settings.seed)
    model = build_model(arch)  # random weights; e2e's normalisation from the arch
    comp = arch["compression"]
    sel = {"cut_layer": comp["cut_layer"], "unit": "channel",
           "n_candidates": sum(comp["candidates"].values())}
    extra = {"method": "channels", "selector": "scratch", "allocation": allocation,
             "budget": alloc["budget"], "fraction": None, "repeat": repeat,
             "seed": t.settings.seed, "from_scratch": True}
    return _train_pruned(model, t, e2e_model=e2e_model, sel=sel, kept=kept,
                         title=f"{allocation} counts from scratch, budget {alloc['budget']:g}, "
                               f"repeat {repeat}", extra=extra)
