"""The main figures of a finished (or partly finished) run of the study, as plain text.

    python benchmarks/study_summary.py WORKDIR        # the folder holding results/ and logs/

Prints, from the run's own outputs: each training's test accuracy, epochs and seconds; the
e2e training's images per second (training pass alone, median over the epochs after the
first) and seconds per epoch; the search's choice; the compression decisions and how long
the feature ranking took; the controls of the compression (selectors at the chosen k, the
frontier, McNemar against e2e, latency); the e2e per-layer SI table; and the wall time of every
job (Snakemake benchmark files), with the controls' share. What is missing is said, not guessed.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

MODELS = ["search", "e2e", "head", "compressed", "scratch", "finetuned"]
# jobs of the controls of (c), for their share of the wall time
CONTROL_JOBS = ("choose_features", "train_control", "train_scratch", "finetune",
                "measure_latency", "summarize_controls", "layer_si/finetuned",
                "plot_layer_si/finetuned")


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def trainings(r: Path) -> None:
    print("trainings (test accuracy of the best epoch's weights):")
    for name in MODELS:
        m = read_json(r / name / "metrics.json")
        if m is None:
            print(f"  {name:<11} missing")
            continue
        hist = pd.read_csv(r / name / "history.csv")
        line = (f"  {name:<11} test acc {100 * m['test_acc']:6.2f}%  best epoch {m['best_epoch']:>3} of "
                f"{len(hist):>3}  val acc {100 * m['val_acc']:6.2f}%  train {m['train_seconds']:7.1f} s")
        if "images_per_s" in hist and len(hist) > 1:
            later = hist.iloc[1:]
            line += (f"  {later['images_per_s'].median():,.0f} images/s (training pass, median "
                     f"after epoch 1), {later['seconds'].median():.2f} s/epoch with validation")
        print(line)


def decisions(r: Path, logs: Path) -> None:
    best = read_json(r / "lr_search" / "best.json")
    if best:
        print(f"search: lr {best['lr']:g}, step {best['step_size']} (val acc "
              f"{100 * best['val_acc']:.2f}%, {best['n_trials']} trials, {best['n_diverged']} diverged)")
    cut = read_json(r / "compress" / "cut.json")
    if cut:
        print(f"cut: after {cut['layer']} (SI {cut['value']:.4f}; best {cut['best_layer']} "
              f"{cut['best_value']:.4f})")
    sel = read_json(r / "compress" / "selected.json")
    if sel:
        c, h, w = sel["shape"]
        print(f"selection: k = {sel['k']} of {sel['n_candidates']} {sel['unit']}s ({c} x {h}x{w}), "
              f"N = {sel['n_samples']}, {sel['steps']} steps ranked; SI at k {sel['si_at_k']:.4f}, "
              f"best {sel['best_si']:.4f} at {sel['best_k']}, all {sel['si_all']:.4f}; "
              f"{sel['seconds']:.1f} s for ranking and Center SI curve")
    log = logs / "compress" / "rank_features.log"
    if log.is_file():
        for m in re.finditer(r"ranked \d+ \w+s in [\d.]+ s.*", log.read_text()):
            print(f"selection log: {m.group(0)}")
    summary = r / "report" / "summary.csv"
    if summary.is_file():
        print("summary.csv:")
        print(pd.read_csv(summary).to_string(index=False))


def controls(r: Path) -> None:
    c = r / "controls"
    for name, what in (("selectors.csv", "selectors at the chosen k"),
                       ("frontier.csv", "frontier"), ("mcnemar.csv", "McNemar against e2e")):
        if not (c / name).is_file():
            print(f"controls, {what}: missing")
            continue
        t = pd.read_csv(c / name)
        print(f"controls, {what}:")
        if name != "mcnemar.csv":
            keys = ["selector", "k"] + (["fraction"] if "fraction" in t else [])
            g = t.groupby(keys, sort=False)["test_acc"]
            agg = pd.DataFrame({"repeats": g.size(), "mean %": 100 * g.mean(),
                                "sd %": 100 * g.std(ddof=1),
                                "each %": g.agg(lambda v: ", ".join(f"{100 * a:.2f}" for a in v))})
            print(agg.to_string(float_format=lambda v: f"{v:.2f}"))
        else:
            print(t.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    lat = r / "latency" / "latency.csv"
    if lat.is_file():
        t = pd.read_csv(lat)
        ref = t[t["model"] == "e2e"].set_index("batch_size")["seconds_per_image"]
        t["ms_per_image"] = 1e3 * t["seconds_per_image"]
        t["speedup"] = t["batch_size"].map(ref) / t["seconds_per_image"]
        print("latency (median per image):")
        print(t[["model", "batch_size", "ms_per_image", "speedup", "parameters", "macs", "device",
                 "threads"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    else:
        print("latency: missing")


def layer_table(r: Path) -> None:
    path = r / "e2e" / "layer_si.csv"
    if not path.is_file():
        print("e2e layer SI: missing")
        return
    t = pd.read_csv(path)
    cols = [c for c in ("split", "layer", "features", "si", "center_si", "si_high", "si_soft",
                        "seconds", "precision") if c in t]
    print(f"e2e layer SI ({len(t)} rows, {t['seconds'].sum():.1f} s of SI in all):")
    print(t[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def wall_times(r: Path) -> None:
    files = sorted((r / "benchmarks").rglob("*.tsv"))
    if not files:
        print("wall time per job: no benchmark files")
        return
    rows = []
    for f in files:
        b = pd.read_csv(f, sep="\t")
        rows.append((str(f.relative_to(r / "benchmarks").with_suffix("")), float(b["s"].iloc[0]),
                     float(b["max_rss"].iloc[0]) if "max_rss" in b else float("nan")))
    print("wall time per job (s, max RSS MiB):")
    for job, s, rss in rows:
        print(f"  {job:<40} {s:8.1f}  {rss:8.0f}")
    print(f"  {'total':<40} {sum(s for _, s, _ in rows):8.1f}")
    share = sum(s for job, s, _ in rows if job.startswith(CONTROL_JOBS))
    print(f"  {'of which the controls of (c)':<40} {share:8.1f}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdir", type=Path)
    a = p.parse_args(argv)
    r = a.workdir / "results"
    trainings(r)
    decisions(r, a.workdir / "logs")
    controls(r)
    layer_table(r)
    wall_times(r)


if __name__ == "__main__":
    main()
