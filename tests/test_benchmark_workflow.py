"""The criteria benchmark through the real snakemake command (tests/smoke-benchmark.yaml on top
of the smoke study, whose e2e model it prunes): every rule runs, each pruned network is the
size its allocation says and within its budget, SI's channels are its ranking's first k, the
repeats share their seeds across cells, and the table's intervals are the paired t-intervals
of the runs (scipy)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

from conftest import ROOT, SMOKE, snakemake  # noqa: F401  (smoke_run: a fixture)
from test_workflow import job_counts

BENCH = ROOT / "tests" / "smoke-benchmark.yaml"
pytestmark = pytest.mark.workflow


def test_dry_run_counts_every_benchmark_job(tmp_path):
    """Counted by hand for the default grid (6 criteria, SI's / uniform / global allocations,
    scratch) at one budget and 2 repeats: choices 6 + 1 (random's second draw) per allocation
    and bn_scale's global one; 13 cells of fine-tunes x 2, and 2 trainings from scratch."""
    cfg = tmp_path / "grid.yaml"
    cfg.write_text("benchmark:\n  enabled: true\n  budgets: [0.3]\n  repeats: 2\n")
    out = snakemake("benchmark", "-n", "--configfile", str(SMOKE), str(cfg),
                    workdir=tmp_path / "run").stdout
    jobs = job_counts(out)
    assert jobs["rank_benchmark"] == 1 and jobs["allocate_benchmark"] == 1
    assert jobs["choose_benchmark_channels"] == 7 + 7 + 1
    assert jobs["finetune_benchmark"] == (6 + 6 + 1) * 2
    assert jobs["train_benchmark_scratch"] == 2
    assert jobs["finetune_benchmark_unpruned"] == 2  # e2e fine-tuned alike, once per repeat
    assert jobs["summarize_benchmark"] == 1
    assert "train_head" not in jobs and "prune_layers" not in jobs  # only what it builds on


def test_benchmark_is_off_by_default(tmp_path):
    out = snakemake("-n", "--configfile", str(SMOKE), workdir=tmp_path).stdout
    assert "finetune_benchmark" not in out and "rank_benchmark" not in out


@pytest.fixture(scope="module")
def bench_run(smoke_run, tmp_path_factory):
    """The benchmark on the smoke study's e2e model, in a copy of the smoke run (the other
    tests read that run's wall-time table and report without the benchmark's jobs)."""
    import shutil

    work = tmp_path_factory.mktemp("bench") / "run"
    shutil.copytree(smoke_run, work, symlinks=True)
    snakemake("benchmark", "--cores", "2", "--max-threads", "1", "--configfile", str(SMOKE),
              str(BENCH), workdir=work)
    return work / "results" / "benchmark"


def _numel(path) -> int:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return sum(v.numel() for k, v in state.items()
               if not k.startswith("normalize.") and "running_" not in k
               and "num_batches_tracked" not in k)


def test_benchmark_cells_sizes_and_pairing(bench_run):
    runs = pd.read_csv(bench_run / "runs.csv")
    table = pd.read_csv(bench_run / "table.csv")
    # 2 criteria at SI's counts and at the uniform share, l1's global threshold, scratch; the
    # unpruned reference
    assert len(table) == 2 + 2 + 1 + 1 + 1 and set(table["n"]) == {2}
    assert len(runs) == 14
    assert set(table[table["allocation"] == "global"]["criterion"]) == {"l1"}
    alloc = json.loads((bench_run / "budget~0.3" / "allocations.json").read_text())
    limit = alloc["limit"]
    work = bench_run.parent.parent
    e2e = _numel(work / "results" / "e2e" / "model.pt")
    unpruned = runs[runs["allocation"] == "unpruned"]
    for _, r in unpruned.iterrows():  # every channel kept: e2e's size, and e2e's own count
        assert _numel(work / r["metrics"].replace("metrics.json", "model.pt")) == e2e
        assert r["parameters"] == alloc["e2e_parameters"] and r["budget"] == 1
    for _, r in runs[runs["allocation"] != "unpruned"].iterrows():
        # the saved network's own weights, counted: what its allocation says, within budget
        model = bench_run.parent.parent / r["metrics"].replace("metrics.json", "model.pt")
        n = _numel(model)
        assert n == r["parameters"] <= limit, (r["allocation"], r["criterion"])
        assert n == alloc["allocations"][r["allocation"]]["parameters"]
    # every cell's repeat r has the seed 0 + r (smoke.yaml's seed 0): the pairing
    for _, c in runs.groupby(["allocation", "criterion"]):
        assert sorted(c["seed"]) == [0, 1]


def test_si_keeps_the_first_k_of_its_ranking_and_random_draws_per_repeat(bench_run):
    ranking = json.loads((bench_run / "ranking.json").read_text())["groups"]
    folder = bench_run / "budget~0.3"
    si = json.loads((folder / "uniform" / "kept" / "si.json").read_text())
    for g, kept in si["kept"].items():
        assert sorted(kept) == sorted(ranking[g]["order"][:si["counts"][g]])
    r0 = json.loads((folder / "uniform" / "kept" / "random~0.json").read_text())
    r1 = json.loads((folder / "uniform" / "kept" / "random~1.json").read_text())
    assert r0["counts"] == r1["counts"] == si["counts"] and r0["kept"] != r1["kept"]


def test_benchmark_intervals_are_paired_t_intervals(bench_run):
    runs = pd.read_csv(bench_run / "runs.csv")
    table = pd.read_csv(bench_run / "table.csv")

    def accs(allocation, criterion):
        c = runs[(runs["allocation"] == allocation) & (runs["criterion"] == criterion)]
        return c.sort_values("seed")["test_acc"].to_numpy()

    ref = accs("si", "si")
    for _, row in table[table["allocation"] != "unpruned"].iterrows():
        x = accs(row["allocation"], row["criterion"])
        m, half = x.mean(), scipy.stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
        assert row["mean"] == pytest.approx(m) and row["lo"] == pytest.approx(m - half)
        if (row["allocation"], row["criterion"]) == ("si", "si"):
            continue
        d = x - ref
        half = scipy.stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
        assert row["delta_to_si"] == pytest.approx(d.mean(), abs=1e-12)
        if half > 0:
            assert row["delta_lo"] == pytest.approx(d.mean() - half)
            assert row["delta_hi"] == pytest.approx(d.mean() + half)
    compared = pd.read_csv(bench_run / "comparisons.csv")
    # every cell against SI at SI's counts (5), random at SI's counts against itself at the
    # uniform share (1), and SI at its counts against the unpruned reference (1); Holm over 7
    assert len(compared) == 7
    d = ref - accs("unpruned", "unpruned")
    pruning = compared[compared["question"] == "pruning"].iloc[0]
    half = scipy.stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert pruning["delta"] == pytest.approx(d.mean(), abs=1e-12)
    assert pruning["lo"] == pytest.approx(d.mean() - half, abs=1e-12)
    p = compared["p_value"].dropna().to_numpy()
    order = np.argsort(p)
    holm = np.maximum.accumulate(np.minimum(1, p[order] * (len(p) - np.arange(len(p)))))
    assert np.allclose(compared["p_holm"].dropna().to_numpy()[order], holm)


def test_benchmark_report_and_figures(bench_run):
    md = (bench_run / "benchmark.md").read_text()
    assert md.startswith("## SI against the field's criteria at matched budgets")
    assert "### Budget 0.3" in md and "**Which channels (SI's counts):**" in md
    assert "**What pruning costs at equal training**" in md and "fine-tuned alike" in md
    for name in ("frontier_parameters.png", "frontier_macs.png", "curves.png"):
        assert (bench_run / name).stat().st_size > 10_000
        assert f"]({name})" in md
    # the fine-tunes' validation curves: one point per epoch of each run
    h = pd.read_csv(bench_run / "budget~0.3" / "si" / "random" / "repeat~1" / "history.csv")
    assert list(h["epoch"]) == [1]
    # from scratch: e2e's epochs and the fine-tune's (1), as long as a fine-tuned network
    import yaml
    e2e_epochs = yaml.safe_load(SMOKE.read_text())["train"]["epochs"]
    h = pd.read_csv(bench_run / "budget~0.3" / "uniform" / "scratch" / "repeat~0" / "history.csv")
    assert list(h["epoch"]) == list(range(1, e2e_epochs + 2))


def test_a_macs_budget_reaches_the_allocations(bench_run, tmp_path):
    """benchmark.budget_of macs through the rule (at another budget of the bench run, so its
    own files stay as they are): every allocation's network within budget x e2e's MACs per
    image, e2e's counted by hooks on a forward pass."""
    from conftest import macs_by_hooks
    from sicompress.model import load_model

    cfg = tmp_path / "macs.yaml"
    cfg.write_text("benchmark:\n  budget_of: macs\n")
    work = bench_run.parent.parent
    snakemake("results/benchmark/budget~0.5/allocations.json", "--cores", "1", "--configfile",
              str(SMOKE), str(BENCH), str(cfg), workdir=work)
    alloc = json.loads((bench_run / "budget~0.5" / "allocations.json").read_text())
    e2e = macs_by_hooks(load_model(work / "results" / "e2e" / "model.pt").eval())["total"]
    assert alloc["budget_of"] == "macs" and alloc["e2e_macs"] == e2e
    assert alloc["limit"] == pytest.approx(0.5 * e2e)
    assert set(alloc["allocations"]) == {"si", "uniform", "global"}
    assert all(a["macs"] <= 0.5 * e2e for a in alloc["allocations"].values())


@pytest.mark.parametrize("configs, jobs", [
    # the GPU check's part: 1 budget, 6 criteria x 2 allocations + global (one repeat: random
    # draws once), no scratch
    (["gpu-quick.yaml", "gpu-quick-benchmark.yaml"],
     {"allocate_benchmark": 1, "choose_benchmark_channels": 13, "finetune_benchmark": 13,
      "finetune_benchmark_unpruned": 1}),
    # the GPU benchmark: 3 budgets x (17 choices: 5 + random's 3 draws at each of two
    # allocations, and the global one; 13 cells x 3 repeats, 3 from scratch)
    (["gpu-benchmark.yaml"],
     {"allocate_benchmark": 3, "choose_benchmark_channels": 51, "finetune_benchmark": 117,
      "train_benchmark_scratch": 9, "finetune_benchmark_unpruned": 3}),
    # the CPU benchmark: 1 budget; choices: 6 criteria at SI's counts (random's 3 draws: 8),
    # SI, BN scale and random at the uniform share (5), the global threshold (1); 10 cells x 3
    # repeats; from scratch at the uniform share and SI's counts, 2 x 3
    (["cpu-benchmark.yaml"],
     {"allocate_benchmark": 1, "choose_benchmark_channels": 14, "finetune_benchmark": 30,
      "train_benchmark_scratch": 6, "finetune_benchmark_unpruned": 3}),
    # its MACs control: SI and BN scale at SI's counts and the uniform share, no scratch
    (["cpu-benchmark.yaml", "cpu-benchmark-macs.yaml"],
     {"allocate_benchmark": 1, "choose_benchmark_channels": 4, "finetune_benchmark": 12,
      "train_benchmark_scratch": 0, "finetune_benchmark_unpruned": 0}),
    # the ResNet's shorter grid: SI and BN scale at SI's counts, BN scale's global threshold,
    # none at the uniform share (only scratch): 3 choices, 3 cells x 3 repeats
    (["cpu-benchmark-resnet.yaml"],
     {"allocate_benchmark": 1, "choose_benchmark_channels": 3, "finetune_benchmark": 9,
      "train_benchmark_scratch": 3, "finetune_benchmark_unpruned": 3}),
])
def test_dry_runs_of_the_shipped_benchmark_configs(tmp_path, monkeypatch, configs, jobs):
    """The job counts their comments give, counted by hand from their grids."""
    monkeypatch.setenv("CIFAR10_JPEG", str(tmp_path / "cifar10-jpeg.tar.gz"))  # not read
    out = snakemake("benchmark", "-n", "--configfile",
                    *[str(ROOT / "config" / c) for c in configs], workdir=tmp_path).stdout
    counts = job_counts(out)
    assert {k: counts.get(k, 0) for k in jobs} == jobs
    assert counts.get("train_benchmark_scratch", 0) == jobs.get("train_benchmark_scratch", 0)
    assert counts["rank_benchmark"] == 1 and counts["train_e2e"] == 1


def test_the_study_report_shows_the_benchmark_when_it_is_on(bench_run):
    """The study's report.md with the benchmark on: its section between the layer-wise pruning
    and the wall time, each benchmark job in the wall-time table."""
    work = bench_run.parent.parent
    snakemake("results/report/report.md", "--cores", "2", "--configfile", str(SMOKE), str(BENCH),
              workdir=work)
    md = (work / "results" / "report" / "report.md").read_text()
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    i = headings.index("SI against the field's criteria at matched budgets")
    assert headings[i - 1] == "Layer-wise SI pruning of every conv layer"
    assert "finetune_benchmark" in md and "rank_benchmark" in md
    assert "](../benchmark/frontier_parameters.png)" in md
    # Snakemake's HTML report of the same run: the benchmark's figures with their captions
    snakemake("--configfile", str(SMOKE), str(BENCH), "--report", "results/report/bench.html",
              workdir=work)
    html = (work / "results" / "report" / "bench.html").read_text(errors="replace")
    assert "Criteria benchmark" in html and "frontier_parameters.png" in html
