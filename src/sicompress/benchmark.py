"""The criteria benchmark: SI against the field's channel criteria at matched budgets.

Does SI earn its cost as a pruning criterion? The study compares criteria only at SI's own
channel counts after its cut; here every criterion prunes the channels of the whole network
(every group of `pruning.channel_groups`, the network's own classifier kept and sliced:
`pruning.build_whole_pruned`), under a budget (a share of e2e's parameters, or of its
multiply-accumulates per image: `benchmark.budget_of`), and each pruned
network is fine-tuned end to end from e2e's weights with n seeds, the protocol of the field
(Li et al. 2017; Lin et al. 2020; Liu et al. 2017). Two questions are asked apart:

- **which channels** (the selection): every criterion at SI's per-group counts;
- **how many per group** (the allocation): every criterion at a uniform share of every
  group meeting the same budget (`allocation.uniform`), and BN scale also with its global
  threshold (Network Slimming's, `allocation.global_threshold`); the uniform-width network
  trained from scratch at each budget is Liu et al.'s (2019) control, for as many epochs as a
  pruned network trains in all (e2e's and its fine-tune's: their Scratch-B, counted in epochs).

And one reference that is not pruned (`benchmark.unpruned`): e2e itself fine-tuned on the same
schedule with the same seeds. A fine-tuned network has trained for e2e's epochs and the
fine-tune's; against e2e alone it is credited with that extra training, and a network this
small gains more from it than it loses to pruning. What pruning costs (and the published
claim) is read against this reference, paired by seed.

SI's allocation is its own rule (`decisions.choose_k`: the fewest channels within a tolerance
of the curve's best) with the tolerance chosen per budget (`allocation.si_tolerance`). Its
curves are ranked **once, on the unpruned network** (`rank_groups`: every group's forward
selection with the other groups whole), and cut per budget. The study's layer-wise pruning
ranks each group on the network already pruned before it, which ties each ranking to one
tolerance: a budget grid would need one full sequential ranking per budget (and per step of
the tolerance search), where one ranking serves every budget here. SI's channels at any count
are the first k of its order, so SI is also run at the uniform counts.

Every decision reads training images only (SI: si_train; Taylor, HRank: the fixed batch of
`scoring.training_batch`); the seconds each criterion takes to decide are recorded beside its
channels. `summarize` reads the fine-tunes as one table per budget with intervals paired by
seed (`comparisons.compare`), Holm over the whole family.

In the workflow: `workflow/rules/benchmark.smk` (config section `benchmark`, on by its switch,
target `benchmark`); the fine-tunes and the from-scratch trainings are
`trainings.finetune_whole` and `trainings.train_counts_scratch`, the unpruned reference
`trainings.finetune_unpruned`; the report's section is
`markdown_report.criteria_benchmark` (also alone as results/benchmark/benchmark.md).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import artifacts
from .allocation import global_threshold, macs_cost, parameter_cost, si_tolerance, uniform
from .criteria import criterion

ALLOCATIONS = ("si", "uniform", "global")  # SI's tolerance, a uniform share, a global threshold
ALLOCATION_TITLES = {"si": "SI's counts", "uniform": "uniform share", "global": "global threshold"}
# what a budget is a share of (config benchmark.budget_of): e2e's parameters or its MACs per image
BUDGET_OF = {"parameters": "parameters", "macs": "MACs per image"}
RANKING_COLUMNS = ["group", "step", "channel", "si"]
PARTIAL = "ranking.partial.json"
SCRATCH = "scratch"  # the "criterion" of the uniform-width network trained from scratch
UNPRUNED = "unpruned"  # the allocation and "criterion" of e2e fine-tuned with nothing removed
UNPRUNED_BUDGET = 1.0  # the share of e2e it keeps: all of it
LAST_EPOCHS = 2  # a training's validation accuracy's rise over its last epochs: is it flat?


def budget_name(budget: float) -> str:
    """How a budget appears in paths and tables: its shortest text (0.25, 0.125)."""
    return f"{float(budget):g}"


def criteria_at(section: Mapping, allocation: str) -> list[str]:
    """The criteria run at `allocation`'s counts: section["criteria"], or at the uniform share
    section["uniform_criteria"] where it is given (a shorter grid: the allocation question for
    fewer criteria than the selection question; [] none, the uniform share only from scratch)."""
    if allocation == "uniform" and section.get("uniform_criteria") is not None:
        return list(section["uniform_criteria"])
    return list(section["criteria"])


def scratch_allocations(section: Mapping) -> list[str]:
    """The allocations whose networks are trained from scratch: section["scratch_allocations"]
    where given (each must be one of section["allocations"]), else the uniform share (the
    first allocation where the uniform share is not run); [] where section["scratch"] is off."""
    if not section["scratch"]:
        return []
    given = section.get("scratch_allocations")
    if given is None:
        return ["uniform" if "uniform" in section["allocations"] else section["allocations"][0]]
    missing = [a for a in given if a not in section["allocations"]]
    if missing:
        raise ValueError(f"benchmark.scratch_allocations: {', '.join(missing)} not among "
                         f"benchmark.allocations {list(section['allocations'])}")
    return list(given)


def cells(section: Mapping) -> list[tuple[str, str]]:
    """(allocation, criterion) of every cell config["benchmark"] makes, in the report's order:
    every criterion at each allocation but "global", BN scale's (the global criterion's) own
    global threshold, and (scratch) the networks from scratch (`scratch_allocations`)."""
    out = []
    for allocation in section["allocations"]:
        if allocation == "global":
            out.append(("global", section["global_criterion"]))
        else:
            out += [(allocation, name) for name in criteria_at(section, allocation)]
    out += [(allocation, SCRATCH) for allocation in scratch_allocations(section)]
    return out


def runs(section: Mapping) -> list[dict]:
    """Every training of the benchmark: budget (its `budget_name`), allocation, criterion,
    repeat; the repeats of every cell share their seeds (seed + repeat), the pairing. Last, the
    unpruned reference's repeats (budget 1, allocation and criterion UNPRUNED) where
    section["unpruned"] asks for them."""
    pruned = [{"budget": budget_name(b), "allocation": a, "criterion": c, "repeat": r}
              for b in section["budgets"] for a, c in cells(section)
              for r in range(section["repeats"])]
    unpruned = [{"budget": budget_name(UNPRUNED_BUDGET), "allocation": UNPRUNED,
                 "criterion": UNPRUNED, "repeat": r} for r in range(section["repeats"])]
    return pruned + (unpruned if section.get("unpruned", True) else [])


def chose(run: Mapping) -> bool:
    """Whether a criterion chose this run's channels (it has a kept.json): not the trainings
    from scratch nor the unpruned reference."""
    return run["criterion"] not in (SCRATCH, UNPRUNED)


def scratch_epochs(section: Mapping, train: Mapping) -> int:
    """The from-scratch trainings' epochs: section["scratch_epochs"], or (null) e2e's epochs
    plus the fine-tune's, as many as a fine-tuned network has trained in all."""
    epochs = section.get("scratch_epochs")
    return int(epochs) if epochs else int(train["epochs"]) + int(section["finetune"]["epochs"])


# ----------------------------------------------------------------------------------------
# SI's curves, ranked once on the unpruned network


def rank_groups(*, model_path, data_npz, split_npz, out_json, ranking_csv, pool: int | None = 2,
                batch_size: int = 500, device: str | None = None,
                log: Callable[[str], None] = print) -> dict:
    """SI's forward selection of every group of the whole network, each on the unpruned
    network's output at the group's layer (`layerwise.pruned_activations` with nothing pruned)
    for the si_train images, maps pooled to pool x pool. Writes `ranking_csv`
    (RANKING_COLUMNS: every group's SI curve along its order) and `out_json` (per group its
    order, curve, channels, map size and seconds). A group finished is kept beside the result
    and not ranked again after a kill."""
    from .activations import subset_images
    from .devices import pick_device
    from .layerwise import pruned_activations
    from .pruning import arch_and_state, channel_groups
    from .selection import forward_select
    from .si import PRECISION

    if pool is not None and (isinstance(pool, bool) or int(pool) != pool or pool < 1):
        raise ValueError(f"benchmark.pool must be a positive integer or null, got {pool!r}")
    dev = pick_device(device, log=log)
    arch, state = arch_and_state(model_path)
    state = {k: v.to(dev) for k, v in state.items()}
    images, labels = subset_images(data_npz, split_npz, "si_train")
    groups = channel_groups(arch)
    last = arch["features"][-1]["name"]
    whole = {h.name: list(range(h.channels)) for h in groups}  # nothing pruned
    partial_path = Path(out_json).with_name(PARTIAL)
    identity = {"pool": pool, "model": artifacts.fingerprint(*[state[k] for k in sorted(state)]),
                "data": artifacts.fingerprint(images, labels)}
    saved = artifacts.read_state(partial_path, identity, log, what="ranking",
                                 other="another model, data or pool")
    done: dict[str, dict] = saved.get("groups", {}) if saved else {}
    log(f"SI ranking of {len(groups)} groups of the whole network on si_train ({len(labels)} "
        f"images, {dev}, {PRECISION}), each on the unpruned network, maps pooled to "
        f"{'full size' if pool is None else f'{pool}x{pool}'}")
    for g in groups:
        if g.name in done:
            log(f"{g.name}: resumed")
            continue
        t0 = time.perf_counter()
        acts = pruned_activations({"arch": arch, "state_dict": state}, last, whole, g.name, images,
                                  pool=pool, batch_size=batch_size, device=dev)
        sel = forward_select(acts, labels, unit="channel", device=dev)
        done[g.name] = {"channels": g.channels, "map": list(acts.shape[2:]),
                        "order": [int(c) for c in sel.order],
                        "si": [float(v) for v in sel.si], "seconds": time.perf_counter() - t0}
        artifacts.write_json(partial_path, {**identity, "groups": done})
        log(f"{g.name}: {g.channels} channels ranked, SI {sel.si[0]:.4f} (1) to "
            f"{max(sel.si):.4f} (best), {done[g.name]['seconds']:.1f} s")
    curves = [pd.DataFrame({"group": name, "step": np.arange(1, len(r["order"]) + 1),
                            "channel": r["order"], "si": r["si"]}) for name, r in done.items()]
    with artifacts.atomic_path(ranking_csv) as tmp:
        pd.concat(curves, ignore_index=True)[RANKING_COLUMNS].to_csv(tmp, index=False)
    out = {"groups": {g.name: done[g.name] for g in groups}, "n_samples": int(len(labels)),
           "pool": pool, "seconds": float(sum(r["seconds"] for r in done.values())),
           "provenance": artifacts.provenance(settings={
               "model": str(model_path), "data": str(data_npz), "split": str(split_npz),
               "pool": pool, "device": str(dev), "ranked_on": "the unpruned network"})}
    artifacts.write_json(out_json, out)
    partial_path.unlink(missing_ok=True)
    log(f"ranking done: {out['seconds']:.1f} s over {len(groups)} groups")
    return out


# ----------------------------------------------------------------------------------------
# Counts per group under a budget


def allocate(*, model_path, ranking_json, budget: float, global_criterion: str | None,
             out_json, budget_of: str = "parameters", log: Callable[[str], None] = print
             ) -> dict:
    """The counts per group of each allocation whose network is the largest within `budget`
    x e2e's `budget_of` ("parameters", or "macs": multiply-accumulates per image): "si" (SI's
    rule at the tolerance found for this budget), "uniform" (one share of every group), and
    "global" (`global_criterion`'s scores over every group against one threshold, scored on
    the unpruned network; None: not made). Writes `out_json`: per allocation its counts,
    parameters, MACs, knob and the seconds it took."""
    from .cost import arch_parameters, macs_per_image
    from .pruning import arch_and_state, group_sizes
    from .scoring import group_scores

    if not 0 < float(budget) <= 1:
        raise ValueError(f"a budget is a share of the {budget_of} in (0, 1], got {budget!r}")
    if budget_of not in BUDGET_OF:
        raise ValueError(f"benchmark.budget_of must be one of {list(BUDGET_OF)}, "
                         f"got {budget_of!r}")
    arch, state = arch_and_state(model_path)
    sizes = group_sizes(arch)
    last, classifier = arch["features"][-1]["name"], arch["classifier"]
    # the whole network's parameters and MACs at given counts: its own classifier's widths
    # read what is left, as `pruning.whole_pruned_arch` builds it
    shape = (arch, last, classifier["hidden"], classifier["dropout"])
    costs = {"parameters": parameter_cost(*shape), "macs": macs_cost(*shape)}
    totals = {"parameters": arch_parameters(arch)["total"], "macs": macs_per_image(arch)["total"]}
    cost, total = costs[budget_of], totals[budget_of]
    limit = float(budget) * total
    ranking = artifacts.read_json(ranking_json)["groups"]
    if set(ranking) != set(sizes):
        raise ValueError(f"{ranking_json} ranks groups {sorted(ranking)}, the network has "
                         f"{sorted(sizes)}: it was ranked on another network")
    out = {"budget": float(budget), "budget_of": budget_of,
           "e2e_parameters": int(totals["parameters"]), "e2e_macs": int(totals["macs"]),
           "limit": limit, "sizes": sizes, "allocations": {}}

    def record(name, counts, knob, t0):
        out["allocations"][name] = {"counts": counts, "knob": knob,
                                    "parameters": int(costs["parameters"](counts)),
                                    "macs": int(costs["macs"](counts)),
                                    "seconds": time.perf_counter() - t0}

    t0 = time.perf_counter()
    si = si_tolerance({g: ranking[g]["si"] for g in sizes}, cost, limit)
    record("si", si["counts"], {"tolerance": si["tolerance"]}, t0)
    t0 = time.perf_counter()
    un = uniform(sizes, cost, limit)
    record("uniform", un["counts"], {"share": un["share"]}, t0)
    if global_criterion is not None:
        t0 = time.perf_counter()
        scores = group_scores(global_criterion, {"arch": arch, "state_dict": state})
        gl = global_threshold(scores, cost, limit)
        record("global", gl["counts"], {"threshold": gl["threshold"],
                                        "criterion": global_criterion}, t0)
    out["provenance"] = artifacts.provenance(settings={
        "model": str(model_path), "ranking": str(ranking_json), "budget": float(budget),
        "budget_of": budget_of, "global_criterion": global_criterion})
    artifacts.write_json(out_json, out)
    for name, a in out["allocations"].items():
        log(f"budget {budget_name(budget)} of the {BUDGET_OF[budget_of]} ({limit:,.0f} of "
            f"{total:,}): {name}: {sum(a['counts'].values())} of {sum(sizes.values())} "
            f"channels, {a['parameters']:,} parameters, {a['macs']:,} MACs ({a['knob']})")
    return out


# ----------------------------------------------------------------------------------------
# The channels of one criterion at one allocation


def choose_channels(*, model_path, ranking_json, allocations_json, allocation: str,
                    choice: str, seed: int, data_npz, split_npz, out_json,
                    log: Callable[[str], None] = print) -> dict:
    """The channels criterion `choice` keeps at `allocation`'s counts (`scoring.choose` on the
    whole network, group after group on the network pruned so far; "si" the first k of each
    group's order; a seeded criterion's repeat r, "random~r", drawn with seed + r; Taylor and
    HRank on the fixed batch drawn with `seed`). Writes `out_json` with the seconds it took
    (for SI: its share of the ranking, which every budget shares, and the tolerance search)."""
    from .cost import arch_parameters, macs_per_image
    from .pruning import arch_and_state, whole_pruned_arch
    from .scoring import choose, si_channels, training_batch

    name, _, repeat = choice.partition("~")
    crit = criterion(name)
    allocations = artifacts.read_json(allocations_json)
    if allocation not in allocations["allocations"]:
        raise ValueError(f"{allocations_json} has no allocation {allocation!r} (has "
                         f"{sorted(allocations['allocations'])})")
    alloc = allocations["allocations"][allocation]
    counts = {g: int(k) for g, k in alloc["counts"].items()}
    arch, state = arch_and_state(model_path)
    last = arch["features"][-1]["name"]
    draw = int(seed) + int(repeat or 0) if crit.seeded else None
    t0 = time.perf_counter()
    batch = training_batch(data_npz, split_npz, seed=seed) if crit.needs_batch else None
    if name == "si":
        ranking = artifacts.read_json(ranking_json)["groups"]
        kept = {g: sorted(si_channels(ranking[g]["order"], k)) for g, k in counts.items()}
        seconds = float(sum(r["seconds"] for r in ranking.values()))
        if allocation == "si":
            seconds += float(alloc["seconds"])
    else:
        chosen = choose(name, {"arch": arch, "state_dict": state}, last, counts,
                        seed=draw if draw is not None else 0, batch=batch)
        kept = {g: sorted(chosen[g]) for g in counts}
        seconds = time.perf_counter() - t0
        if allocation == "global":
            seconds += float(alloc["seconds"])
    pruned = whole_pruned_arch(arch, kept)
    out = {"criterion": name, "choice": choice, "allocation": allocation,
           "budget": allocations["budget"], "seed": draw, "counts": counts, "kept": kept,
           "parameters": arch_parameters(pruned)["total"],
           "macs": macs_per_image(pruned)["total"], "seconds": seconds,
           "provenance": artifacts.provenance(settings={
               "model": str(model_path), "allocations": str(allocations_json),
               "allocation": allocation, "choice": choice, "seed": draw,
               "batch_images": None if batch is None else len(batch[1])})}
    artifacts.write_json(out_json, out)
    log(f"{choice} at {allocation}'s counts (budget {budget_name(allocations['budget'])}): "
        f"{sum(len(v) for v in kept.values())} channels, {out['parameters']:,} parameters, "
        f"decided in {seconds:.2f} s")
    return out


# ----------------------------------------------------------------------------------------
# The answer: one table per budget, the comparisons, the frontiers


def cell_title(allocation: str, name: str) -> str:
    """How the report names one cell: "L1 at SI's counts", "from scratch (uniform share)"."""
    if name == SCRATCH:
        return f"from scratch, {ALLOCATION_TITLES[allocation]}"
    if name == UNPRUNED:
        return "unpruned e2e, fine-tuned alike"
    return f"{criterion(name).title} at {ALLOCATION_TITLES[allocation]}"


def runs_table(runs: Sequence[Mapping]) -> pd.DataFrame:
    """One row per training: run (budget, allocation, criterion, repeat) with its metrics.json
    (seed, test and validation accuracy, parameters, MACs), kept.json (decide seconds) and
    history.csv (val_gain_last: the validation accuracy's rise over the last LAST_EPOCHS
    epochs, how far from flat the training ended)."""
    rows = []
    for r in runs:
        m = artifacts.read_json(r["metrics"])
        seconds = math.nan
        if r.get("kept"):
            seconds = float(artifacts.read_json(r["kept"])["seconds"])
        gain = math.nan  # has the validation curve flattened? its rise over the last epochs
        if r.get("history"):
            val = pd.read_csv(r["history"])["val_acc"].to_numpy(float)
            if len(val) > LAST_EPOCHS:
                gain = float(val[-1] - val[-1 - LAST_EPOCHS])
        rows.append({"budget": float(r["budget"]), "allocation": r["allocation"],
                     "criterion": r["criterion"], "repeat": int(r["repeat"]),
                     "seed": int(m["provenance"]["seed"]), "test_acc": float(m["test_acc"]),
                     "val_acc": float(m["val_acc"]),
                     "parameters": int(m["parameters"]["total"]),
                     "macs": int(m["macs"]["total"]), "decide_seconds": seconds,
                     "val_gain_last": gain,
                     "metrics": str(r["metrics"]), "predictions": str(r["predictions"])})
    return pd.DataFrame(rows)


def _runs_of(frame: pd.DataFrame) -> list[dict]:
    return [{"seed": int(s), "test_acc": float(a), "predictions": p}
            for s, a, p in zip(frame["seed"], frame["test_acc"], frame["predictions"])]


def comparisons_table(table: pd.DataFrame) -> pd.DataFrame:
    """Every comparison of the benchmark, paired by seed (the fine-tunes of one repeat share
    their seed), as one family (Holm over every row): per budget, every cell against SI at
    SI's counts (the reference), and each criterion at SI's counts against itself at the
    uniform share (the allocation question for that criterion; SI's is in the first set), and
    SI at SI's counts against the unpruned reference (question "pruning": what pruning costs
    at equal training) where it was run."""
    from .comparisons import compare, comparison_table

    rows = []
    unpruned = table[table["allocation"] == UNPRUNED]
    for budget, b in table[table["allocation"] != UNPRUNED].groupby("budget", sort=True):
        def cell(allocation, name):
            return b[(b["allocation"] == allocation) & (b["criterion"] == name)]

        ref = cell("si", "si")
        cells = b[["allocation", "criterion"]].drop_duplicates().itertuples(index=False)
        for allocation, name in cells:
            if (allocation, name) == ("si", "si") or ref.empty:
                continue
            row = compare(_runs_of(cell(allocation, name)), _runs_of(ref),
                          a=cell_title(allocation, name), b=cell_title("si", "si"),
                          what="against SI")
            rows.append({**row, "budget": budget, "allocation": allocation,
                         "criterion": name,
                         "question": "against SI" if name == SCRATCH
                         else "selection" if allocation == "si"
                         else "allocation" if name == "si" else "against SI"})
        for name in sorted(set(b["criterion"]) - {"si", SCRATCH}):
            at_si, at_uniform = cell("si", name), cell("uniform", name)
            if at_si.empty or at_uniform.empty:
                continue
            row = compare(_runs_of(at_si), _runs_of(at_uniform), a=cell_title("si", name),
                          b=cell_title("uniform", name), what="allocation")
            rows.append({**row, "budget": budget, "allocation": "si", "criterion": name,
                         "question": "allocation"})
        if not ref.empty and not unpruned.empty:
            row = compare(_runs_of(ref), _runs_of(unpruned), a=cell_title("si", "si"),
                          b=cell_title(UNPRUNED, UNPRUNED), what="against unpruned")
            rows.append({**row, "budget": budget, "allocation": "si", "criterion": "si",
                         "question": "pruning"})
    extra = ["budget", "allocation", "criterion", "question"]
    if not rows:
        return pd.DataFrame(columns=extra)
    family = comparison_table(rows)
    for key in extra:
        family[key] = [r[key] for r in rows]
    return family


def budget_table(table: pd.DataFrame, compared: pd.DataFrame) -> pd.DataFrame:
    """Per budget and cell: repeats, parameters, MACs, mean test accuracy with its 95%
    interval, the paired difference to SI at SI's counts with its interval and Holm p, and the
    seconds its criterion took to decide (mean over its choices), and how much its validation
    accuracy still rose over the last LAST_EPOCHS epochs (mean over its repeats)."""
    from .stats import mean_interval

    rows = []
    against = compared[compared["what"] == "against SI"] if len(compared) else compared
    for (budget, allocation, name), c in table.groupby(["budget", "allocation", "criterion"],
                                                        sort=False):
        iv = mean_interval(c["test_acc"])
        row = {"budget": budget, "allocation": allocation, "criterion": name,
               "cell": cell_title(allocation, name), "n": len(c),
               "parameters": int(c["parameters"].iloc[0]), "macs": int(c["macs"].mean()),
               "mean": iv["delta"], "lo": iv["lo"], "hi": iv["hi"],
               "delta_to_si": 0.0 if (allocation, name) == ("si", "si") else math.nan,
               "delta_lo": math.nan, "delta_hi": math.nan, "p_holm": math.nan,
               "decide_seconds": float(c["decide_seconds"].mean()),
               "val_gain_last": float(c["val_gain_last"].mean())}
        if len(against):
            hit = against[(against["budget"] == budget) & (against["allocation"] == allocation)
                          & (against["criterion"] == name)]
            if len(hit):
                h = hit.iloc[0]
                row.update(delta_to_si=h["delta"], delta_lo=h["lo"], delta_hi=h["hi"],
                           p_holm=h["p_holm"])
        rows.append(row)
    out = pd.DataFrame(rows)
    order = {a: i for i, a in enumerate((*ALLOCATIONS, UNPRUNED))}
    out["_a"] = out["allocation"].map(order)
    out["_c"] = out["criterion"].map(lambda n: -1 if n == "si" else 99 if n == SCRATCH else 0)
    return out.sort_values(["budget", "_a", "_c", "criterion"], ascending=[False, True, True,
                                                                            True]) \
        .drop(columns=["_a", "_c"]).reset_index(drop=True)


def histories_table(runs: Sequence[Mapping]) -> pd.DataFrame:
    """Every epoch of every training (its history.csv) with its run: budget, allocation,
    criterion, cell, repeat, epoch, val_acc, train_acc."""
    frames = []
    for r in runs:
        h = pd.read_csv(r["history"])[["epoch", "val_acc", "train_acc"]]
        frames.append(h.assign(budget=float(r["budget"]), allocation=r["allocation"],
                               criterion=r["criterion"],
                               cell=cell_title(r["allocation"], r["criterion"]),
                               repeat=int(r["repeat"])))
    return pd.concat(frames, ignore_index=True)


def summarize(*, runs: Sequence[Mapping], out_runs, out_table, out_comparisons,
              frontier_parameters=None, frontier_macs=None, curves=None, e2e_metrics=None,
              e2e_model=None, log: Callable[[str], None] = print) -> dict:
    """The benchmark's tables and figures from its trainings (module notes): one row per
    training (runs), one per cell and budget (table), the family of paired comparisons, the
    accuracy-parameters and accuracy-MACs frontiers (e2e's metrics.json and model.pt drawn
    for reference) and the validation curves of every training (runs with their history)."""
    from . import figures

    table = runs_table(runs)
    compared = comparisons_table(table)
    cells = budget_table(table, compared)
    for frame, path in ((table, out_runs), (cells, out_table), (compared, out_comparisons)):
        with artifacts.atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
    e2e = None
    if e2e_metrics is not None and e2e_model is not None:
        from .cost import arch_parameters, macs_per_image
        from .model import load_checkpoint

        arch = load_checkpoint(e2e_model)["arch"]
        e2e = {"parameters": arch_parameters(arch)["total"],
               "macs": macs_per_image(arch)["total"],
               "test_acc": artifacts.read_json(e2e_metrics)["test_acc"]}
    for path, x, label in ((frontier_parameters, "parameters", "parameters"),
                           (frontier_macs, "macs", "multiply-accumulates per image")):
        if path is not None:
            figures.plot_benchmark_frontier(cells, path, x=x, xlabel=label, e2e=e2e)
    if curves is not None:
        figures.plot_benchmark_curves(histories_table(runs), curves)
    log(f"benchmark: {len(table)} trainings in {len(cells)} cells over "
        f"{table['budget'].nunique()} budgets; {len(compared)} comparisons")
    return {"runs": len(table), "cells": len(cells), "comparisons": len(compared)}
