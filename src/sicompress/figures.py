"""Figures of the study. Every function writes one PNG atomically and returns nothing."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import (EngFormatter, FuncFormatter, LogLocator, MaxNLocator,  # noqa: E402
                               NullFormatter)
from matplotlib.transforms import Bbox, offset_copy  # noqa: E402
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
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4), dpi=DPI)
    e = history["epoch"]
    # a short training's points marked: one epoch is a point, and a line through it is nothing
    marker = dict(marker="o", ms=3) if len(e) <= 30 else {}
    for ax, key, label in ((ax_acc, "acc", "accuracy (%)"), (ax_loss, "loss", "cross-entropy loss")):
        scale = 100.0 if key == "acc" else 1.0
        ax.plot(e, history[f"train_{key}"] * scale, label=train_label, color="tab:blue", **marker)
        ax.plot(e, history[f"val_{key}"] * scale, label="validation", color="tab:orange", **marker)
        if best_epoch:
            ax.axvline(best_epoch, color="gray", ls="--", lw=1, label=f"best epoch ({best_epoch})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # epochs are whole
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if best_epoch and best_epoch in set(e):
        row = history[history["epoch"] == best_epoch].iloc[0]
        ax_acc.plot([best_epoch], [row["val_acc"] * 100], "o", color="tab:red")
        # the value above the marker (the best validation point: no validation curve there),
        # on the side away from the nearer edge, so that it stays inside the axes
        ax_acc.margins(y=0.12)
        lo, hi = ax_acc.get_xlim()
        right_half = best_epoch > (lo + hi) / 2
        ax_acc.annotate(f"{row['val_acc'] * 100:.2f}%", (best_epoch, row["val_acc"] * 100),
                        textcoords="offset points", xytext=(-6 if right_half else 6, 5),
                        ha="right" if right_half else "left", va="bottom")
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
    fig, ax = plt.subplots(figsize=(1.6 * len(steps) + 3, 0.8 * len(lrs) + 2), dpi=DPI)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")  # diverged cells: light gray
    im = ax.imshow(grid, cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(steps)), [f"{s:g}" for s in steps])
    ax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    ax.set_xlabel("StepLR step (epochs of the full schedule)")
    ax.set_ylabel("initial learning rate")
    for _, r in table.iterrows():
        i, j = lrs.index(r["lr"]), steps.index(r["step_size"])
        text = "diverged" if r["diverged"] else f"{r['val_acc'] * 100:.1f}%"
        if chosen and (r["lr"], r["step_size"]) == chosen:
            text += "\nchosen"
            # not clipped: an edge cell's frame would lose its outer half
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2,
                                       clip_on=False))
        ax.text(j, i, text, ha="center", va="center", color="black", fontsize=9,
                bbox=dict(boxstyle="round", fc="white", alpha=0.6, lw=0))
    fig.colorbar(im, ax=ax, label="validation accuracy (%)")
    ax.set_title("learning-rate search:\nvalidation accuracy of each trial's best epoch")
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
    # below the rotated layer names and the axis label: lower for longer names (a ResNet's
    # "block1_1.conv1" against a VGG's "conv1_1")
    longest = max((len(str(n)) for n in layers["layer"]), default=0)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3 - 0.03 * max(0, longest - 7)),
              ncol=3, frameon=False)
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
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=DPI)
    steps = ranking["step"]
    unit = selected["unit"]
    ax.plot(steps, ranking["si"], color="tab:orange", label=f"SI of the first n {unit}s")
    ax.plot(steps, ranking["center_si"], color="tab:blue", alpha=0.8,
            label=f"Center SI of the first n {unit}s")
    if "si_test" in ranking.columns:  # the same order on si_test: reported, never decided on
        ax.plot(steps, ranking["si_test"], color="tab:orange", ls=":", alpha=0.9,
                label="SI on si_test, same order")
        ax.plot(steps, ranking["center_si_test"], color="tab:blue", ls=":", alpha=0.7,
                label="Center SI on si_test, same order")
    ax.axhline(selected["si_all"], color="tab:orange", ls="--",
               label=f"SI of all {selected['n_candidates']} {unit}s "
                     f"({selected['si_all']:.3f})")
    ax.axhline(selected["center_si_all"], color="tab:blue", ls="--", alpha=0.8,
               label=f"Center SI of all ({selected['center_si_all']:.3f})")
    k = selected["k"]
    ax.axvline(k, color="tab:red", ls=":")
    ax.plot([k], [selected["si_at_k"]], marker="*", ms=16, color="tab:red", ls="none",
            label=f"chosen k = {k} (SI {selected['si_at_k']:.3f})")
    if len(steps) > 60:
        ax.set_xscale("log")
        # counts written out (1, 2, 5, 10, 20, ...), not as powers of ten
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"number of selected {unit}s (forward selection order)")
    ax.set_ylabel("separation index")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
    ax.set_title(f"feature selection at {selected['cut_layer']}")
    _save(fig, path)


# Colours and markers of the controls of part (c): one colour per selector, one marker per
# reference model. e2e hollow and large: head has its size, and a filled e2e would hide it.
SELECTOR_COLORS = {"si": "tab:red", "l1": "tab:blue", "random": "tab:gray", "bn_scale": "tab:orange",
                   "taylor": "tab:pink", "hrank": "#1b9e77"}
REFERENCE_STYLES = {"e2e": dict(marker="D", color="black", mfc="none", mew=1.5, ms=11),
                    "head": dict(marker="s", color="tab:purple"),
                    "scratch": dict(marker="X", color="tab:brown"),
                    "finetuned": dict(marker="P", color="tab:green"),
                    "layerwise": dict(marker="h", color="tab:olive"),
                    "layerwise_finetuned": dict(marker="H", color="tab:cyan")}
# The layer-wise pruned models: when far from part (c)'s models in size or accuracy (see
# `_far_references`), drawn in a second row with every model, so that part (c)'s frontier
# keeps the width of the first row.
OVERVIEW_ONLY = ("layerwise", "layerwise_finetuned")
FAR = 0.5  # far: it would stretch the first row's range of some quantity by more than this
FRONTIER_AXES = (("params_total", "parameters"), ("macs_total", "multiply-accumulates per image"))
# Where a reference's name may go, in points from its marker: beside first, then above or
# below, then further out; the first that overlaps no other name, marker or the frame is used.
LABEL_OFFSETS = [(f * dx, f * dy) for f in (1.0, 1.8, 2.8)
                 for dx, dy in ((8, 3), (8, -3), (-8, 3), (-8, -3), (0, 9), (0, -9))]


def plot_frontier(frontier: pd.DataFrame, path: str | Path, *, chosen: pd.DataFrame | None = None,
                  references: dict[str, dict] | None = None) -> None:
    """Test accuracy (%) against parameters and against MACs per image, two panels, and a
    second row with every model when layer-wise pruned models lie far from part (c)'s.

    frontier, chosen: one row per run with selector, k, repeat, test_acc (fraction),
    params_total, macs_total (frontier.csv and selectors.csv). Per selector and k: the mean
    over repeats with the sample sd as error bar, each repeat a faint dot; the chosen k's
    runs drawn large (SI as a star), side by side to the right of their size (7 points per
    selector), since they share it with each other and with scratch and finetuned.
    references: {name: {test_acc, params_total, macs_total}} for e2e, head and the optional
    scratch, finetuned, layerwise and layerwise_finetuned, each a marker named next to it.
    The first row holds part (c)'s runs and the references near them, on linear axes (log
    where the sizes span more than a decade); layer-wise pruned models far from them go to a
    second row that shows every model from zero, the first row's frame a dashed box.
    """
    chosen = chosen if chosen is not None else pd.DataFrame(columns=frontier.columns)
    references = references or {}
    far_names = _far_references([frontier, chosen], references)
    near = {n: r for n, r in references.items() if n not in far_names}
    far = {n: r for n, r in references.items() if n in far_names}
    selectors = list(dict.fromkeys(list(frontier["selector"]) + list(chosen["selector"])))
    colors = {s: SELECTOR_COLORS.get(s, f"C{i + 3}") for i, s in enumerate(selectors)}
    rows = 2 if far else 1
    fig, axes = plt.subplots(rows, 2, figsize=(10, 4.2 * rows), dpi=DPI, squeeze=False)
    for col, (x, name) in enumerate(FRONTIER_AXES):
        _frontier_runs(axes[0, col], x, frontier, chosen, selectors, colors)
        _references(axes[0, col], x, near)
        axes[0, col].set_xlabel(name)
        if far:
            ax = axes[1, col]
            _frontier_runs(ax, x, frontier, chosen, selectors, colors, means_only=True)
            _references(ax, x, references)
            ax.set_xlabel(name)
    for row, ax in zip([0, 0, 1, 1], axes.flat):
        ax.margins(x=0.12, y=0.15)  # room for the names beside the outermost markers
        lo, hi = ax.dataLim.x0, ax.dataLim.x1
        if row == 0 and lo > 0 and hi / lo > 10:  # sizes a decade apart and more: log
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(f"{ax.get_xlabel()} (log scale)")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 100k, 4.1M
        ax.autoscale_view()
        ax.grid(alpha=0.3)
    for row in range(rows):  # one accuracy scale per row
        lo = min(ax.get_ylim()[0] for ax in axes[row])
        hi = max(ax.get_ylim()[1] for ax in axes[row])
        for ax in axes[row]:
            ax.set_ylim(lo, hi)
        axes[row, 0].set_ylabel("test accuracy (%)")
    if far:
        for col in range(2):
            top, ax = axes[0, col], axes[1, col]
            ax.set_xlim(0, max(ax.get_xlim()[1], top.get_xlim()[1]))
            (x0, x1), (y0, y1) = top.get_xlim(), top.get_ylim()
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ls="--",
                                       ec="0.4", lw=1))
            top.set_title("part (c), its controls and the references of its size", fontsize=10)
            ax.set_title("every model (dashed box: the panel above)", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if far:  # the overview's own references
        more = [(h, lab) for h, lab in zip(*axes[1, 0].get_legend_handles_labels()) if lab in far]
        handles, labels = handles + [h for h, _ in more], labels + [lab for _, lab in more]
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=4,
               frameon=False, fontsize=9)
    fig.suptitle("test accuracy against size: the controls of the compression (c)"
                 + (" and the layer-wise pruned models" if far else ""))
    fig.tight_layout()
    # names placed last: they are in points from their markers, so the layout must be final
    renderer = fig.canvas.get_renderer()
    for col, (x, _) in enumerate(FRONTIER_AXES):
        _name_markers(axes[0, col], x, near, renderer)
        if far:
            _name_markers(axes[1, col], x, far, renderer)
    _save(fig, path)


def _far_references(runs: list[pd.DataFrame], references: dict[str, dict]) -> set[str]:
    """The layer-wise pruned references (OVERVIEW_ONLY) that would stretch the range of
    parameters, MACs or accuracy of part (c)'s runs (the tables `runs`) and its other
    references by more than FAR of that range: drawn in the second row only."""
    base = [r for n, r in references.items() if n not in OVERVIEW_ONLY]
    far = set()
    for name in [n for n in references if n in OVERVIEW_ONLY]:
        for key in ("params_total", "macs_total", "test_acc"):
            values = [float(v) for t in runs for v in t[key]] + [float(r[key]) for r in base]
            if not values:
                continue
            lo, hi, v = min(values), max(values), float(references[name][key])
            if max(lo - v, v - hi) > FAR * (hi - lo):
                far.add(name)
    return far


def _frontier_runs(ax, x: str, frontier: pd.DataFrame, chosen: pd.DataFrame,
                   selectors: list[str], colors: dict[str, str], means_only: bool = False) -> None:
    """Part (c)'s runs on one panel: per selector and k the mean +- sd over repeats (and each
    repeat a faint dot unless `means_only`), the chosen k's drawn large."""
    for i, s in enumerate(selectors):
        for table, big in ((frontier, False), (chosen, True)):
            part = table[table["selector"] == s]
            if part.empty:
                continue
            # the chosen k's selectors share one size (and with it the compressed models
            # scratch and finetuned): side by side to the right of it, 7 points apart
            shift = 7.0 * (i + 1) if big else 0.0
            where = offset_copy(ax.transData, fig=ax.figure, x=shift, y=0.0, units="points")
            if not means_only:
                ax.plot(part[x], part["test_acc"] * 100, "o", color=colors[s], alpha=0.25, ms=3,
                        ls="none", transform=where)
            stats = part.groupby("k").agg(x=(x, "mean"), mean=("test_acc", "mean"),
                                          sd=("test_acc", "std")).sort_index()
            sd = stats["sd"].fillna(0.0) * 100
            if big:
                ax.errorbar(stats["x"], stats["mean"] * 100, yerr=sd, color=colors[s],
                            ls="none", marker="*" if s == "si" else "o",
                            ms=15 if s == "si" else 8, mec="black", mew=0.7, capsize=3,
                            label=f"{s} at the chosen k", zorder=4, transform=where)
                # shifted artists leave the data limits alone: the limits must hold them
                ax.update_datalim(np.column_stack([part[x], part["test_acc"] * 100]))
                for end in (stats["mean"] * 100 - sd, stats["mean"] * 100 + sd):
                    ax.update_datalim(np.column_stack([stats["x"], end]))
            else:
                ax.errorbar(stats["x"], stats["mean"] * 100, yerr=sd, color=colors[s],
                            marker="o", ms=4, capsize=2, lw=1.2,
                            label=f"{s}, mean ± sd over repeats")


def _references(ax, x: str, references: dict[str, dict]) -> None:
    """One marker per reference model, in its legend entry's style."""
    for name, ref in references.items():
        style = dict(ms=8) | REFERENCE_STYLES.get(name, dict(marker="^", color="black"))
        ax.plot([ref[x]], [ref["test_acc"] * 100], ls="none", label=name, zorder=5, **style)


def _name_markers(ax, x: str, references: dict[str, dict], renderer) -> None:
    """Each reference's name next to its marker, in its colour, where it overlaps no other
    name, no marker and stays inside the axes (the first such place in LABEL_OFFSETS; the
    first place when there is none)."""
    frame = ax.get_window_extent(renderer)
    taken = [box for line in ax.get_lines() for box in _marker_boxes(line, renderer)]
    for name, ref in references.items():
        color = REFERENCE_STYLES.get(name, {}).get("color", "black")
        for n, (dx, dy) in enumerate(LABEL_OFFSETS):
            text = ax.annotate(name, (ref[x], ref["test_acc"] * 100), textcoords="offset points",
                               xytext=(dx, dy), fontsize=8, color=color,
                               ha="left" if dx > 0 else "right" if dx < 0 else "center",
                               va="bottom" if dy > 0 else "top" if dy < 0 else "center")
            box = text.get_window_extent(renderer)
            fits = (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0
                    and box.y1 <= frame.y1 and not any(box.overlaps(b) for b in taken))
            if fits or n == len(LABEL_OFFSETS) - 1:
                if not fits:  # nowhere free: the first place after all
                    text.remove()
                    text = ax.annotate(name, (ref[x], ref["test_acc"] * 100), fontsize=8,
                                       textcoords="offset points", xytext=LABEL_OFFSETS[0],
                                       color=color, ha="left", va="bottom")
                    box = text.get_window_extent(renderer)
                taken.append(box)
                break
            text.remove()


def _marker_boxes(line, renderer) -> list[Bbox]:
    """The display box of each marker of a line (none for a line without markers)."""
    if line.get_marker() in (None, "None", "", " ") or not len(line.get_xdata()):
        return []
    xy = line.get_transform().transform(np.column_stack([line.get_xdata(), line.get_ydata()])
                                        .astype(float))
    half = line.get_markersize() / 2 * renderer.points_to_pixels(1.0)
    return [Bbox([[x - half, y - half], [x + half, y + half]]) for x, y in xy]


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
    ax.plot(w, [r["val_acc"] for r in recs], "^:", color="gray",
            label="validation accuracy (fraction)")
    ax.axhline(choice["reference_center_si"] - choice["tolerance"], color="tab:blue", lw=0.8,
               ls=":", label=f"largest width's Center SI - {choice['tolerance']:g}")
    ax.plot([choice["width"]], [choice["center_si"]], "*", ms=16, color="tab:red", ls="none",
            label=f"chosen width {choice['width']}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(w, [str(v) for v in w])
    ax.set_xlabel("hidden units of the new classifier")
    ax.set_ylabel("separation index, or accuracy (fraction)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
    ax.set_title("classifier width designed with Center SI")
    _save(fig, path)


# The criteria benchmark: one line per criterion and allocation across the budgets
ALLOCATION_STYLES = {"si": dict(marker="o", ls="-"), "uniform": dict(marker="s", ls="--"),
                     "global": dict(marker="^", ls=":")}
SCRATCH_STYLE = dict(marker="X", ls="-.", color="tab:brown")
UNPRUNED_STYLE = dict(marker="*", ls="-", color="black")  # e2e fine-tuned, nothing removed


def _cell_style(allocation: str, name: str) -> dict:
    if name == "scratch":  # a cross at the uniform share, a plus at SI's counts
        return {**SCRATCH_STYLE, **({"marker": "P", "ls": "-"} if allocation == "si" else {})}
    if name == "unpruned":
        return dict(UNPRUNED_STYLE)
    return {**ALLOCATION_STYLES.get(allocation, dict(marker="D", ls="-")),
            "color": SELECTOR_COLORS.get(name, "black")}


def plot_benchmark_frontier(cells: pd.DataFrame, path: str | Path, *, x: str, xlabel: str,
                            e2e: dict | None = None, title: str = "") -> None:
    """Test accuracy (%) against `x` ("parameters" or "macs") of every cell of the criteria
    benchmark (`benchmark.budget_table`: budget, allocation, criterion, cell, n, mean, lo, hi
    and x): per cell its mean over the repeats at each budget with the 95% interval as an
    error bar, joined across budgets; colour the criterion, marker and line the allocation
    (SI's counts solid circles, the uniform share dashed squares, the global threshold dotted
    triangles; from scratch brown crosses, pluses at SI's counts). Cells of one budget share its size closely, so
    they are spread sideways a little (by a share of the budget's size) to be told apart.
    e2e: {x: value, "test_acc": fraction}, drawn as a line and a marker for reference; the
    unpruned reference (allocation "unpruned": e2e fine-tuned alike) a black star at e2e's
    size with its interval."""
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=DPI)
    unpruned = cells[cells["allocation"] == "unpruned"]
    cells = cells[cells["allocation"] != "unpruned"]
    order = list(dict.fromkeys(zip(cells["allocation"], cells["criterion"], cells["cell"])))
    spread = 0.012  # of the size, per cell, centred on the budget
    for i, (allocation, name, title_) in enumerate(order):
        c = cells[(cells["allocation"] == allocation) & (cells["criterion"] == name)] \
            .sort_values(x)
        shift = 1 + spread * (i - (len(order) - 1) / 2)
        xs = c[x].to_numpy(float) * shift
        mean = 100 * c["mean"].to_numpy(float)
        lo = 100 * c["lo"].to_numpy(float)
        hi = 100 * c["hi"].to_numpy(float)
        err = np.vstack([np.where(np.isnan(lo), 0, mean - lo), np.where(np.isnan(hi), 0, hi - mean)])
        style = _cell_style(allocation, name)
        ax.errorbar(xs, mean, yerr=err, capsize=2, lw=1.2, ms=6, label=title_,
                    mfc="white" if allocation == "uniform" else None, **style)
    if e2e is not None:
        ax.axhline(100 * e2e["test_acc"], color="black", lw=0.8, ls=":")
        ax.plot([e2e[x]], [100 * e2e["test_acc"]], "D", color="black", mfc="none", ms=9,
                label="e2e (unpruned)")
    for _, u in unpruned.iterrows():
        mean, lo, hi = (100 * float(u[k]) for k in ("mean", "lo", "hi"))
        err = [[0 if np.isnan(lo) else mean - lo], [0 if np.isnan(hi) else hi - mean]]
        ax.errorbar([float(u[x])], [mean], yerr=err, capsize=2, ms=11, label=u["cell"],
                    **{**UNPRUNED_STYLE, "ls": "none"})
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"{xlabel} (log scale)")
    ax.set_ylabel("test accuracy (%), mean and 95% interval over repeats")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(title or f"accuracy against {xlabel}, each criterion and allocation")
    _save(fig, path)


def plot_benchmark_curves(histories: pd.DataFrame, path: str | Path) -> None:
    """Validation accuracy (%) per epoch of every training of the criteria benchmark, one
    panel per budget, one line per cell (the mean over its repeats; the from-scratch runs
    on their own, longer schedule): do the fine-tunes flatten before they end?
    histories: one row per epoch with budget, allocation, criterion, cell, repeat, epoch,
    val_acc (fraction)."""
    unpruned = histories[histories["allocation"] == "unpruned"]
    histories = histories[histories["allocation"] != "unpruned"]
    budgets = sorted(histories["budget"].unique(), reverse=True)
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.2 * len(budgets) + 2.5, 4.2), dpi=DPI,
                             squeeze=False, sharey=True)
    for ax, budget in zip(axes[0], budgets):
        b = histories[histories["budget"] == budget]
        for (allocation, name, title_), c in b.groupby(["allocation", "criterion", "cell"],
                                                        sort=False):
            m = c.groupby("epoch")["val_acc"].mean()
            style = _cell_style(allocation, name)
            ax.plot(m.index, 100 * m.to_numpy(), lw=1.2, ms=3, label=title_,
                    mfc="white" if allocation == "uniform" else None, **style)
        if len(unpruned):  # the reference, in every panel
            m = unpruned.groupby("epoch")["val_acc"].mean()
            ax.plot(m.index, 100 * m.to_numpy(), lw=1.6, ms=5,
                    label=unpruned["cell"].iloc[0], **UNPRUNED_STYLE)
        ax.set_title(f"budget {budget:g} of e2e's parameters")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("validation accuracy (%), mean over repeats")
    handles, labels = axes[0, -1].get_legend_handles_labels()
    axes[0, -1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                       fontsize=8, frameon=False)
    _save(fig, path)
