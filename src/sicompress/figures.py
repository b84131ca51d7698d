"""Figures of the study. Every function writes one PNG atomically and returns nothing."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import artifacts  # noqa: E402
from .decisions import EXTRACTOR_KINDS, extractor_rows  # noqa: E402

DPI = 120


def _save(fig, path: str | Path) -> None:
    with artifacts.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_curves(history: pd.DataFrame, path: str | Path, *, title: str, best_epoch: int | None = None,
                train_label: str = "train (augmented)") -> None:
    """Accuracy and loss of train and validation per epoch, two panels, best epoch marked;
    `train_label` says what the training curve was measured on."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    e = history["epoch"]
    for ax, key, label in ((ax_acc, "acc", "accuracy (%)"), (ax_loss, "loss", "cross-entropy loss")):
        scale = 100.0 if key == "acc" else 1.0
        ax.plot(e, history[f"train_{key}"] * scale, label=train_label, color="tab:blue")
        ax.plot(e, history[f"val_{key}"] * scale, label="validation", color="tab:orange")
        if best_epoch:
            ax.axvline(best_epoch, color="gray", ls="--", lw=1, label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if best_epoch and best_epoch in set(e):
        row = history[history["epoch"] == best_epoch].iloc[0]
        ax_acc.plot([best_epoch], [row["val_acc"] * 100], "o", color="tab:red")
        ax_acc.annotate(f"{row['val_acc'] * 100:.2f}%", (best_epoch, row["val_acc"] * 100),
                        textcoords="offset points", xytext=(5, -12))
    ax_acc.set_title("accuracy")
    ax_loss.set_title("loss")
    fig.suptitle(title)
    _save(fig, path)


def plot_lr_heatmap(table: pd.DataFrame, path: str | Path, *, chosen: tuple[float, int] | None = None) -> None:
    """Validation accuracy over lr (rows) x StepLR step (columns); diverged trials marked."""
    lrs = sorted(table["lr"].unique())
    steps = sorted(table["step_size"].unique())
    grid = np.full((len(lrs), len(steps)), np.nan)
    for _, r in table.iterrows():
        i, j = lrs.index(r["lr"]), steps.index(r["step_size"])
        grid[i, j] = np.nan if r["diverged"] else r["val_acc"] * 100
    fig, ax = plt.subplots(figsize=(1.6 * len(steps) + 3, 0.8 * len(lrs) + 2))
    im = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(steps)), [f"{s:g}" for s in steps])
    ax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    ax.set_xlabel("StepLR step (epochs of the full schedule)")
    ax.set_ylabel("initial learning rate")
    for _, r in table.iterrows():
        i, j = lrs.index(r["lr"]), steps.index(r["step_size"])
        text = "diverged" if r["diverged"] else f"{r['val_acc'] * 100:.1f}%"
        if chosen and (r["lr"], r["step_size"]) == chosen:
            text += "\nchosen"
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
        ax.text(j, i, text, ha="center", va="center", color="white" if r["diverged"] else "black",
                fontsize=9, bbox=dict(boxstyle="round", fc="white", alpha=0.6, lw=0))
    fig.colorbar(im, ax=ax, label="validation accuracy (%)")
    ax.set_title("learning-rate search: validation accuracy of each trial's best epoch")
    _save(fig, path)


def source_name(reused_from: str) -> str:
    """How a figure or the report names the table rows were reused from: the model's folder
    (results/e2e/layer_si.csv -> e2e)."""
    return Path(reused_from).parent.name or str(reused_from)


def plot_layer_si(table: pd.DataFrame, path: str | Path, *, title: str) -> None:
    """Center SI and SI per layer (input first, then the extractor, then the classifier), on
    the SI subsets of train and test data; the end of the extractor and the rows reused from
    another model's table marked."""
    fig, ax = plt.subplots(figsize=(12, 4.5))  # 1440 px wide at DPI
    styles = {("center_si", "train"): dict(color="tab:blue", ls="-", marker="o"),
              ("center_si", "test"): dict(color="tab:blue", ls="--", marker="s", mfc="white"),
              ("si", "train"): dict(color="tab:orange", ls="-", marker="o"),
              ("si", "test"): dict(color="tab:orange", ls="--", marker="s", mfc="white")}
    names = {"center_si": "Center SI", "si": "SI (1-NN)"}
    layers = (table[["layer_index", "layer", "kind"]].drop_duplicates("layer_index")
              .sort_values("layer_index").reset_index(drop=True))
    x_of = {int(i): x for x, i in enumerate(layers["layer_index"])}
    for (metric, split), style in styles.items():
        part = table[table["split"] == split].sort_values("layer_index")
        if part.empty:
            continue
        ax.plot([x_of[int(i)] for i in part["layer_index"]], part[metric],
                label=f"{names[metric]}, {split}", ms=4, **style)
    ax.set_xticks(range(len(layers)), layers["layer"], rotation=60, ha="right")
    for x, layer in enumerate(layers["layer"]):
        if layer.startswith("pool"):
            ax.axvline(x, color="gray", lw=0.5, alpha=0.5)
    reused = table["reused_from"].fillna("").astype(str) if "reused_from" in table else None
    if reused is not None and (reused != "").any():
        rows = table[reused != ""]
        last = max(x_of[int(i)] for i in rows["layer_index"])
        sources = ", ".join(sorted({source_name(r) for r in reused[reused != ""]}))
        ax.axvspan(-0.5, last + 0.5, color="0.6", alpha=0.15, lw=0,
                   label=f"reused: {sources}'s values (identical layers, not measured again)")
    extractor = [x for x, kind in enumerate(layers["kind"])
                 if kind == "input" or kind in EXTRACTOR_KINDS]
    if extractor and len(extractor) < len(layers):
        end = max(extractor) + 0.5
        # labelled in the legend: a label on the axes would meet the title or the curves
        ax.axvline(end, color="black", lw=1.2, ls=":",
                   label="end of the extractor (classifier to the right)")
    ax.set_xlim(-0.5, len(layers) - 0.5)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("separation index")
    ax.set_xlabel("layer (output after ReLU for convs and hidden fc layers; logits last)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, frameon=False)
    ax.set_title(title)
    _save(fig, path)


def plot_cut(table: pd.DataFrame, path: str | Path, *, cut: dict) -> None:
    """The layer curve the cut was decided on (train rows of the extractor: a classifier row
    given is left out, as in the decision), the threshold and the cut marked."""
    metric = cut["metric"]
    names = {"si": "SI (1-NN)", "center_si": "Center SI", "si_high": "high-order SI",
             "si_soft": "soft SI"}
    part = extractor_rows(table)
    layers = list(part["layer"])
    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.plot(range(len(part)), part[metric], color="tab:orange", marker="o", ms=4,
            label=f"{names.get(metric, metric)}, si_train")
    threshold = cut["best_value"] - cut["tolerance"]
    ax.axhline(threshold, color="gray", ls=":", label=f"best - tolerance = {threshold:.3f}")
    i_cut = layers.index(cut["layer"])
    ax.axvspan(i_cut + 0.5, len(layers) - 0.5, color="tab:red", alpha=0.08, label="layers cut")
    ax.plot([i_cut], [cut["value"]], marker="*", ms=16, color="tab:red", ls="none",
            label=f"cut after {cut['layer']} ({cut['value']:.3f})")
    i_best = layers.index(cut["best_layer"])
    ax.plot([i_best], [cut["best_value"]], marker="D", ms=8, mfc="none", color="black", ls="none",
            label=f"best: {cut['best_layer']} ({cut['best_value']:.3f})")
    ax.set_xticks(range(len(layers)), layers, rotation=60, ha="right")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(names.get(metric, metric))
    ax.set_xlabel("layer of the e2e model")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, frameon=False)
    ax.set_title(f"layer cut: shortest prefix within {cut['tolerance']:g} of the best layer")
    _save(fig, path)


def plot_feature_si(ranking: pd.DataFrame, path: str | Path, *, selected: dict) -> None:
    """SI (and Center SI) against the number of selected features, k and the all-features SI
    marked; solid: si_train (the ranking's data), dotted: si_test along the same order."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    steps = ranking["step"]
    ax.plot(steps, ranking["si"], color="tab:orange", label="SI of the first n features")
    ax.plot(steps, ranking["center_si"], color="tab:blue", alpha=0.8,
            label="Center SI of the first n features")
    if "si_test" in ranking.columns:  # the same order on si_test: reported, never decided on
        ax.plot(steps, ranking["si_test"], color="tab:orange", ls=":", alpha=0.9,
                label="SI on si_test, same order")
        ax.plot(steps, ranking["center_si_test"], color="tab:blue", ls=":", alpha=0.7,
                label="Center SI on si_test, same order")
    ax.axhline(selected["si_all"], color="tab:orange", ls="--",
               label=f"SI of all {selected['n_candidates']} {selected['unit']}s "
                     f"({selected['si_all']:.3f})")
    ax.axhline(selected["center_si_all"], color="tab:blue", ls="--", alpha=0.8,
               label=f"Center SI of all ({selected['center_si_all']:.3f})")
    k = selected["k"]
    ax.axvline(k, color="tab:red", ls=":")
    ax.plot([k], [selected["si_at_k"]], marker="*", ms=16, color="tab:red", ls="none",
            label=f"chosen k = {k} (SI {selected['si_at_k']:.3f})")
    if len(steps) > 60:
        ax.set_xscale("log")
    ax.set_xlabel(f"number of selected {selected['unit']}s (forward selection order)")
    ax.set_ylabel("separation index")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
    ax.set_title(f"feature selection at {selected['cut_layer']}")
    _save(fig, path)


# Colours and markers of the controls of part (c): one colour per selector, one marker per
# reference model.
SELECTOR_COLORS = {"si": "tab:red", "l1": "tab:blue", "random": "tab:gray"}
REFERENCE_STYLES = {"e2e": dict(marker="D", color="black"),
                    "head": dict(marker="s", color="tab:purple"),
                    "scratch": dict(marker="X", color="tab:brown"),
                    "finetuned": dict(marker="P", color="tab:green"),
                    "layerwise": dict(marker="h", color="tab:olive"),
                    "layerwise_finetuned": dict(marker="H", color="tab:cyan")}


def plot_frontier(frontier: pd.DataFrame, path: str | Path, *, chosen: pd.DataFrame | None = None,
                  references: dict[str, dict] | None = None) -> None:
    """Test accuracy (%) against parameters and against MACs per image (log x), two panels.

    frontier, chosen: one row per run with selector, k, repeat, test_acc (fraction),
    params_total, macs_total (frontier.csv and selectors.csv). Per selector and k: the mean
    over repeats with the sample sd as error bar, each repeat a faint dot; the chosen k's
    runs drawn large (SI as a star), side by side (x shifted by a few % per selector) since
    they share one size. references: {name: {test_acc, params_total, macs_total}}
    for e2e, head and the optional scratch and finetuned, labelled markers.
    """
    chosen = chosen if chosen is not None else pd.DataFrame(columns=frontier.columns)
    references = references or {}
    selectors = list(dict.fromkeys(list(frontier["selector"]) + list(chosen["selector"])))
    colors = {s: SELECTOR_COLORS.get(s, f"C{i + 3}") for i, s in enumerate(selectors)}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, x, xlabel in zip(axes, ("params_total", "macs_total"),
                             ("parameters (log scale)", "multiply-accumulates per image (log scale)")):
        for i, s in enumerate(selectors):
            for table, big in ((frontier, False), (chosen, True)):
                part = table[table["selector"] == s]
                if part.empty:
                    continue
                # the chosen k's selectors share one size: side by side, a few % apart
                dodge = 1.0 + 0.015 * (i - (len(selectors) - 1) / 2) if big else 1.0
                ax.plot(part[x] * dodge, part["test_acc"] * 100, "o", color=colors[s],
                        alpha=0.25, ms=3, ls="none")
                stats = part.groupby("k").agg(x=(x, "mean"), mean=("test_acc", "mean"),
                                              sd=("test_acc", "std")).sort_index()
                sd = stats["sd"].fillna(0.0) * 100
                if big:
                    label = f"{s} at the chosen k"
                    ax.errorbar(stats["x"] * dodge, stats["mean"] * 100, yerr=sd, color=colors[s],
                                ls="none", marker="*" if s == "si" else "o",
                                ms=15 if s == "si" else 8, mec="black", mew=0.7, capsize=3,
                                label=label, zorder=4)
                else:
                    ax.errorbar(stats["x"], stats["mean"] * 100, yerr=sd, color=colors[s],
                                marker="o", ms=4, capsize=2, lw=1.2,
                                label=f"{s}, mean ± sd over repeats")
        for name, ref in references.items():
            style = REFERENCE_STYLES.get(name, dict(marker="^", color="black"))
            ax.plot([ref[x]], [ref["test_acc"] * 100], ls="none", ms=8, label=name, **style)
            ax.annotate(name, (ref[x], ref["test_acc"] * 100), textcoords="offset points",
                        xytext=(5, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("test accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=4,
               frameon=False, fontsize=9)
    fig.suptitle("test accuracy against size: the controls of the compression (c)")
    fig.tight_layout()
    _save(fig, path)


def plot_kept_channels(pruned: dict, path: str | Path) -> None:
    """Layer-wise pruning: channels of every conv before and after, and the SI at the kept
    count on each layer's (pooled) maps."""
    layers = pruned["layers"]
    names = [r["layer"] for r in layers]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(names) + 3), 4.2))
    ax.bar(x, [r["before"] for r in layers], color="lightgray", label="before (e2e)")
    ax.bar(x, [r["after"] for r in layers], color="tab:red", label="kept (layer-wise SI)")
    for i, r in enumerate(layers):
        ax.annotate(f"{r['after']}/{r['before']}", (i, r["after"]), textcoords="offset points",
                    xytext=(0, 3), ha="center", fontsize=8)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel("output channels")
    ax.set_title(f"layer-wise SI pruning up to {pruned['cut_layer']}: "
                 f"{pruned['channels_after']} of {pruned['channels_before']} channels kept")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left")
    _save(fig, path)


def plot_width_choice(choice: dict, path: str | Path) -> None:
    """Center SI (and SI) of the trained hidden layer on si_train against the classifier's
    width, the reference (largest) width's Center SI minus the tolerance, the choice marked."""
    recs = choice["widths"]
    w = [r["width"] for r in recs]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(w, [r["center_si"] for r in recs], "o-", color="tab:blue",
            label="Center SI of the hidden layer (si_train)")
    ax.plot(w, [r["si"] for r in recs], "s--", color="tab:orange", mfc="white",
            label="SI of the hidden layer (si_train)")
    ax.plot(w, [r["val_acc"] for r in recs], "^:", color="gray", label="validation accuracy")
    ax.axhline(choice["reference_center_si"] - choice["tolerance"], color="tab:blue", lw=0.8,
               ls=":", label=f"largest width's Center SI - {choice['tolerance']:g}")
    ax.plot([choice["width"]], [choice["center_si"]], "*", ms=16, color="tab:red", ls="none",
            label=f"chosen width {choice['width']}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(w, [str(v) for v in w])
    ax.set_xlabel("hidden units of the new classifier")
    ax.set_ylabel("value")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
    ax.set_title("classifier width designed with Center SI")
    _save(fig, path)
