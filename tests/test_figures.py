"""Figures a person can read: rendered with matplotlib's own renderer, the names, values and
tick labels of a figure must not overlap one another, stay inside their axes, and the data a
panel is about must fill it. Inputs are the numbers of a CIFAR-10 run (cpu-real) typed in."""

import itertools

import numpy as np
import pandas as pd
import pytest

from sicompress import figures


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions would save, drawn instead of written: -> a list."""
    out = []

    def keep(fig, path):
        fig.canvas.draw()
        out.append(fig)

    monkeypatch.setattr(figures, "_save", keep)
    yield out
    figures.plt.close("all")


def overlaps(texts) -> list[tuple[str, str]]:
    """The pairs of texts whose rendered boxes overlap."""
    boxes = [(t.get_text(), t.get_window_extent()) for t in texts]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]


def inside(text, ax) -> bool:
    box, frame = text.get_window_extent(), ax.get_window_extent()
    return (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0
            and box.y1 <= frame.y1)


def tick_labels(ax, which: str) -> list:
    """The tick labels drawn on one axis: with text, and at a tick inside the axes' span."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    frame = ax.get_window_extent()
    out = []
    for label in axis.get_ticklabels() + axis.get_ticklabels(minor=True):
        if not (label.get_visible() and label.get_text()):
            continue
        box = label.get_window_extent()
        mid = (box.x0 + box.x1) / 2 if which == "x" else (box.y0 + box.y1) / 2
        lo, hi = (frame.x0, frame.x1) if which == "x" else (frame.y0, frame.y1)
        if lo - 1 <= mid <= hi + 1:
            out.append(label)
    return out


# ----------------------------------------------------------------------------------------
# The frontier of the controls of part (c)

# results/controls/{frontier,selectors}.csv and the references' metrics of the cpu-real run
FRACTIONS = [(0.25, 16, 0, 126850, 4236544), (0.25, 16, 1, 126850, 4236544),
             (0.5, 32, 0, 168882, 4416768), (0.5, 32, 1, 168882, 4416768)]  # (f, k, repeat, ...)
REAL_FRONTIER = pd.DataFrame(
    [(s, f, k, r, acc, p, m)
     for s, accs in (("si", (0.7243, 0.7263, 0.7318, 0.7282)),
                     ("l1", (0.7299, 0.7295, 0.7294, 0.7316)),
                     ("random", (0.7228, 0.7288, 0.7319, 0.7291)))
     for (f, k, r, p, m), acc in zip(FRACTIONS, accs)],
    columns=["selector", "fraction", "k", "repeat", "test_acc", "params_total", "macs_total"])
REAL_CHOSEN = pd.DataFrame(
    [(s, r, 6, acc, 100580, 4123904)
     for s, accs in (("si", (0.715, 0.715)), ("l1", (0.7138, 0.7194)), ("random", (0.7107, 0.7134)))
     for r, acc in enumerate(accs)],
    columns=["selector", "repeat", "k", "test_acc", "params_total", "macs_total"])
REAL_REFERENCES = {
    "e2e": dict(test_acc=0.7223, params_total=241234, macs_total=5096704),
    "head": dict(test_acc=0.7205, params_total=241234, macs_total=5096704),
    "scratch": dict(test_acc=0.7125, params_total=100580, macs_total=4123904),
    "finetuned": dict(test_acc=0.7208, params_total=100580, macs_total=4123904),
    "layerwise": dict(test_acc=0.4634, params_total=28665, macs_total=1346080),
    "layerwise_finetuned": dict(test_acc=0.6496, params_total=28665, macs_total=1346080)}
# the smoke study's: the layer-wise models among part (c)'s, e2e's MACs ten times theirs
SMOKE_REFERENCES = {
    "e2e": dict(test_acc=0.345, params_total=59054, macs_total=1327776),
    "head": dict(test_acc=0.37, params_total=59054, macs_total=1327776),
    "scratch": dict(test_acc=0.59, params_total=49428, macs_total=132256),
    "layerwise": dict(test_acc=0.515, params_total=16542, macs_total=71760),
    "layerwise_finetuned": dict(test_acc=0.505, params_total=16542, macs_total=71760)}


def smoke_runs():
    frontier = pd.DataFrame(
        [(s, f, k, r, acc, p, m) for s in ("si", "l1", "random")
         for (f, k, p, m), accs in (((0.25, 4, 16498, 43712), (0.47, 0.49)),
                                    ((0.5, 8, 33042, 87600), (0.55, 0.58)))
         for r, acc in enumerate(accs)],
        columns=["selector", "fraction", "k", "repeat", "test_acc", "params_total", "macs_total"])
    chosen = pd.DataFrame([(s, r, 12, acc, 49428, 132256) for s, accs in
                           (("si", (0.6, 0.615)), ("l1", (0.63, 0.625)), ("random", (0.56, 0.62)))
                           for r, acc in enumerate(accs)],
                          columns=["selector", "repeat", "k", "test_acc", "params_total",
                                   "macs_total"])
    return frontier, chosen, SMOKE_REFERENCES


def real_runs():
    return REAL_FRONTIER, REAL_CHOSEN, REAL_REFERENCES


@pytest.mark.parametrize("runs", [real_runs, smoke_runs], ids=["cpu-real", "smoke"])
def test_frontier_names_every_reference_without_overlap(runs, drawn, tmp_path):
    frontier, chosen, references = runs()
    figures.plot_frontier(frontier, tmp_path / "f.png", chosen=chosen, references=references)
    (fig,) = drawn
    named = set()
    for ax in fig.axes:
        assert not overlaps(ax.texts), f"names overlap in '{ax.get_xlabel()}'"
        for text in ax.texts:
            assert inside(text, ax), f"{text.get_text()!r} leaves '{ax.get_xlabel()}'"
        named |= {t.get_text() for t in ax.texts}
    assert named == set(references)


@pytest.mark.parametrize("runs", [real_runs, smoke_runs], ids=["cpu-real", "smoke"])
def test_frontier_ticks_are_readable(runs, drawn, tmp_path):
    frontier, chosen, references = runs()
    figures.plot_frontier(frontier, tmp_path / "f.png", chosen=chosen, references=references)
    (fig,) = drawn
    for ax in fig.axes:
        for which in "xy":
            labels = tick_labels(ax, which)
            assert len(labels) >= 2, f"fewer than 2 tick labels on {which} of '{ax.get_xlabel()}'"
            assert not overlaps(labels), f"tick labels collide on {which} of '{ax.get_xlabel()}'"
            # numbers as a person writes them: no powers of ten in mathtext
            assert not any("^" in t.get_text() for t in labels), [t.get_text() for t in labels]


def test_frontier_of_part_c_fills_its_panel(drawn, tmp_path):
    """On cpu-real the layer-wise models reach down to 46 % and 29k parameters: in the panel
    of part (c)'s runs (the first), those runs must still fill most of the height, and they
    with the references of their size most of the width."""
    frontier, chosen, references = real_runs()
    figures.plot_frontier(frontier, tmp_path / "f.png", chosen=chosen, references=references)
    ax = drawn[0].axes[0]
    runs = pd.concat([frontier, chosen])
    near = [r for n, r in references.items() if not n.startswith("layerwise")]
    xs = np.array(list(runs["params_total"]) + [r["params_total"] for r in near], float)
    ys = np.array(list(runs["test_acc"]) + [r["test_acc"] for r in near], float) * 100
    px = ax.transData.transform(np.column_stack([xs, ys]))
    frame = ax.get_window_extent()
    assert (px[:, 0].max() - px[:, 0].min()) / frame.width > 0.6
    run_px = px[:len(runs), 1]
    assert (run_px.max() - run_px.min()) / frame.height > 0.5


# ----------------------------------------------------------------------------------------
# Training curves


def history(epochs: int) -> pd.DataFrame:
    e = np.arange(1, epochs + 1)
    return pd.DataFrame({"epoch": e, "train_acc": 0.3 + 0.04 * e, "val_acc": 0.4 + 0.03 * e,
                         "train_loss": 1.9 - 0.1 * e, "val_loss": 1.6 - 0.05 * e})


@pytest.mark.parametrize("epochs", [1, 2, 8])
def test_curves_ticks_are_whole_epochs(epochs, drawn, tmp_path):
    figures.plot_curves(history(epochs), tmp_path / "c.png", title="t", best_epoch=epochs)
    (fig,) = drawn
    for ax in fig.axes:
        labels = [t.get_text().replace("\N{MINUS SIGN}", "-") for t in tick_labels(ax, "x")]
        assert labels and all(s.lstrip("-").isdigit() for s in labels), labels


def test_one_epoch_is_drawn(drawn, tmp_path):
    """One epoch is one point per curve: it needs a marker, a line through it draws nothing."""
    figures.plot_curves(history(1), tmp_path / "c.png", title="t", best_epoch=1)
    (fig,) = drawn
    for ax in fig.axes:
        curves = [line for line in ax.get_lines() if line.get_label() in
                  ("train (augmented)", "validation")]
        assert len(curves) == 2
        assert all(line.get_marker() not in (None, "None", "") for line in curves)


@pytest.mark.parametrize("best", [1, 5, 8])
def test_best_value_stays_inside_the_axes(best, drawn, tmp_path):
    """The best epoch is often the last: its value must not run over the right edge."""
    figures.plot_curves(history(8), tmp_path / "c.png", title="t", best_epoch=best)
    ax = drawn[0].axes[0]
    (value,) = ax.texts
    assert value.get_text() == f"{(0.4 + 0.03 * best) * 100:.2f}%"
    assert inside(value, ax)


# ----------------------------------------------------------------------------------------
# Feature selection and the learning-rate search


def test_feature_si_counts_are_written_out(drawn, tmp_path):
    """64 candidates put the count on a log axis: its ticks read 1, 2, 5, 10, ..."""
    n = 64
    steps = np.arange(1, n + 1)
    ranking = pd.DataFrame({"step": steps, "si": 0.6 - 0.3 / steps, "center_si": 0.7 - 0.3 / steps})
    selected = dict(unit="channel", n_candidates=n, si_all=0.6, center_si_all=0.7, k=6,
                    si_at_k=0.55, cut_layer="conv4_3")
    figures.plot_feature_si(ranking, tmp_path / "f.png", selected=selected)
    ax = drawn[0].axes[0]
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in tick_labels(ax, "x")]
    assert labels == ["1", "2", "5", "10", "20", "50"]


def luminance(color) -> float:
    from matplotlib.colors import to_rgb
    r, g, b = to_rgb(color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_a_diverged_trial_is_legible(drawn, tmp_path):
    """A diverged trial's cell has no accuracy: its word must contrast with its box."""
    table = pd.DataFrame({"lr": [0.02, 0.05], "step_size": [6, 6], "val_acc": [0.45, np.nan],
                          "diverged": [False, True]})
    figures.plot_lr_heatmap(table, tmp_path / "h.png", chosen=(0.02, 6))
    ax = drawn[0].axes[0]
    (word,) = [t for t in ax.texts if t.get_text() == "diverged"]
    box = word.get_bbox_patch().get_facecolor()
    assert abs(luminance(word.get_color()) - luminance(box[:3])) > 0.5
