"""Forward selection of features by the first-order Separation Index (SI).

Start from no feature; at every step add the candidate whose addition gives the highest SI,
ties to the lowest candidate index. SI here is the fraction of samples whose nearest *other*
sample (Euclidean, self excluded by index, ties to the lowest index) has the same label, i.e.
the leave-one-out accuracy of a 1-nearest-neighbour classifier.

A feature is one channel (its H*W values together, ``unit="channel"``) or one value of the
flattened activation (``unit="element"``). Two implementations return the same order:

- `forward_select_naive` is the reference, written apart from the fast path: for every
  candidate at every step it computes the N x N squared distances of (selected + candidate)
  from scratch and takes every sample's nearest other by argmin.
- `forward_select` keeps D, the squared distances on the selected set (they add over
  features), so a candidate c only adds its own contribution Dc >= 0. The first step (D = 0)
  evaluates every candidate's Dc in full. After that, per step:
  1. probe: the `probe` smallest entries of each row of D (one top-k per step) are evaluated
     for every candidate. t = min over the probes r of D[q, r] + Dc[q, r] is an exact new
     distance, and since D + Dc >= D a point j can be the new nearest neighbour of q only
     if D[q, j] <= t. When t is below every non-probed D[q, j], the neighbour is among the
     probes and sample q is settled for c (most are).
  2. bound: settled samples give each candidate a lower bound on its hit count, adding its
     unsettled samples an upper bound. Only candidates whose upper bound can still beat the
     best exact count are finished, most promising first.
  3. finish: the rows of D that an unsettled sample needs are sorted once; for each
     unsettled (c, q) the points with D[q, j] <= t are a prefix of the sorted row (binary
     search), usually short, and D + Dc is evaluated on that prefix only. In the early
     steps, where prefixes are long, a candidate's unsettled rows are evaluated whole
     instead (cheaper than gathering).
  Candidates and pairs are processed in batches whose temporaries fit `memory_budget` (on
  CPU, cache-sized blocks).

Exactness. SI values are ratios of integer counts, so ties between candidates are common and
a neighbour flipped by rounding would change the order. Both implementations therefore build
every distance from the same float64 operations in the same order: a feature's contribution
to pair (q, j) is sum over its L = H*W values of (x_q - x_j)^2, differences taken directly
(no |a|^2 + |b|^2 - 2ab expansion), summed value by value in a fixed order by elementwise
operations (whose result does not depend on the shape of the tensor they run on), and D is
the sum of the contributions in the order the features were added. The fast path reads D from
the kept matrix and adds the candidate's contribution once; the reference, written on its
own, sums the same squares in the same order from scratch; so both see bit-identical
distances, and neighbour choice and the candidate choice then compare exact floats and
integer counts. Bounds and pruning are exact
too: they discard only points and candidates that provably cannot win.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .devices import pick_device

# ----------------------------------------------------------------------------------------
# Settings

MEMORY_BUDGET = 1 << 30   # bytes of temporaries for a batch of candidates (beyond D and x)
CPU_CHUNK = 1 << 17       # entries per temporary on CPU: small enough to stay in cache
ENTRY_BYTES = 96          # bytes of temporaries per evaluated (candidate, q, j) entry
PROBE = 16                # nearest entries of each row of D probed per sample and candidate
PAIR_COST = 12            # a gathered pair costs about this many entries of a dense row (CPU)
UNITS = ("channel", "element")


@dataclass
class Selection:
    order: list[int]          # feature indices in the order they were added
    si: list[float]           # si[i] = SI of order[:i + 1]
    unit: str                 # "channel" or "element"
    n_samples: int            # N
    n_features: int           # candidates there were (C channels or C*H*W elements)
    stopped: str = "exhausted"  # "exhausted", "max_features" or "patience"
    seconds: float = 0.0

    @property
    def best_size(self) -> int:
        """Fewest features reaching the highest SI on the curve (0 when empty)."""
        return int(np.argmax(self.si)) + 1 if self.si else 0


# ----------------------------------------------------------------------------------------
# Inputs


def _candidates(features, labels, unit: str, device) -> tuple[torch.Tensor, torch.Tensor]:
    """-> features as float64 (F, L, N) and label codes int64 (N,), both on `device`."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    x = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features)
    if x.ndim < 2:
        raise ValueError(f"features must have shape (N, C, ...) with N samples, got shape {tuple(x.shape)}")
    if unit == "channel" and x.ndim not in (2, 3, 4):
        raise ValueError(
            f"unit='channel' needs features of shape (N, C, H, W) (or (N, C, L) / (N, C)), "
            f"got shape {tuple(x.shape)}"
        )
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"features must be real numbers, got dtype {x.dtype}")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 samples for a nearest other sample, got N={n}")
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"features have N={n} samples but labels have {y.shape[0]}")
    x = x.reshape(n, x.shape[1], -1) if unit == "channel" else x.reshape(n, -1, 1)  # (N, F, L)
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"features have no values to select from, shape {tuple(x.shape)}")
    x = x.to(device=device, dtype=torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    codes = np.unique(y, return_inverse=True)[1].reshape(-1)
    return x.permute(1, 2, 0).contiguous(), torch.as_tensor(codes, dtype=torch.int64, device=device)


def _positive_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1


def _check_options(n_features: int, max_features, patience, tolerance, batch_size, memory_budget) -> int:
    if max_features is None:
        max_features = n_features
    if not _positive_int(max_features):
        raise ValueError(f"max_features must be a positive integer or None, got {max_features!r}")
    if patience is not None and not _positive_int(patience):
        raise ValueError(f"patience must be a positive integer or None, got {patience!r}")
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if batch_size is not None and not _positive_int(batch_size):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if not memory_budget > 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    return min(int(max_features), n_features)


# ----------------------------------------------------------------------------------------
# Distances: the one definition both implementations use


def _sq_contribution(diff, n_values: int) -> torch.Tensor:
    """sum over l of diff(l)^2, l = 0, 1, ... in order, one elementwise op at a time (float64).

    diff(l) gives x_q[l] - x_j[l] for the pairs wanted. Elementwise ops round each entry the
    same way whatever the shape, so a pair gets the same bits whether evaluated densely (all
    pairs) or gathered (a few pairs); the sum order is fixed by this loop, not by a reduction.
    """
    acc = None
    for l in range(n_values):
        d = diff(l)
        sq = d * d
        acc = sq if acc is None else acc + sq
    return acc


def _dense_contribution(x: torch.Tensor, feats, rows: slice = slice(None)) -> torch.Tensor:
    """Contributions of features `feats` to all pairs (q in rows, j): (B, R, N)."""
    feats = torch.as_tensor(feats, device=x.device)

    def diff(l):  # one value of the batch at a time: no temporary holds all L = H*W values
        xl = x[:, l][feats]  # (B, N)
        return xl[:, rows, None] - xl[:, None, :]

    return _sq_contribution(diff, x.shape[1])


def _pair_contribution(x: torch.Tensor, c, q, j) -> torch.Tensor:
    """Contribution of feature c[p] to pair (q[p], j[p]) for every p: (P,)."""
    return _sq_contribution(lambda l: x[:, l, :][c, q] - x[:, l, :][c, j], x.shape[1])


def _empty_distances(n: int, device) -> torch.Tensor:
    """D of the empty selection: 0 everywhere, +inf on the diagonal (self excluded by index)."""
    d = torch.zeros(n, n, dtype=torch.float64, device=device)
    d.fill_diagonal_(float("inf"))
    return d  # (N, N)


def _hits(dist: torch.Tensor, y: torch.Tensor, rows: slice) -> torch.Tensor:
    """Samples whose nearest other (argmin: first, i.e. lowest, index on ties) shares the label.

    dist: (B, R, N) for samples q in `rows`; -> (B,) counts.
    """
    nn = dist.argmin(dim=-1)  # (B, R)
    return (y[nn] == y[rows]).sum(dim=-1)


# ----------------------------------------------------------------------------------------
# Greedy loop shared by both implementations


def _greedy(x, y, max_features, patience, tolerance, chunk, best_candidate, progress=None,
            resume=None) -> tuple[list, list, str]:
    """Add the best candidate until `max_features`, exhaustion or `patience` runs out.

    best_candidate(selected, D, candidates) -> (position in candidates, hit count) of the
    candidate with the most hits, ties to the lowest position (candidates are ascending).
    D: (N, N) float64 squared distances on the selected features, +inf on the diagonal.
    progress(order, si, steps): called after each step (steps: the most there can be).
    resume: features already chosen by an interrupted run on the same data and options; they
    are added first, in that order, their SI counted afresh on D, then the search goes on.
    """
    n_features, _, n = x.shape
    pending = _check_resume(resume, n_features)
    order, si = [], []
    remaining = list(range(n_features))
    best, stale, stopped = float("-inf"), 0, "exhausted"
    d = _empty_distances(n, x.device)
    rows_step = max(1, chunk // n)
    while remaining:
        if len(order) >= max_features:
            stopped = "max_features"
            break
        replayed = bool(pending)
        if replayed:  # the same D, the same argmin: the same count as when it was chosen
            chosen = pending.pop(0)
            remaining.remove(chosen)
        else:
            k, count = best_candidate(order, d, remaining)
            chosen = remaining.pop(k)
        for r in range(0, n, rows_step):  # D grows in the order of addition
            d[r:r + rows_step] += _dense_contribution(x, [chosen], slice(r, r + rows_step))[0]
        if replayed:
            count = sum(int(_hits(d[None, r:r + rows_step], y, slice(r, r + rows_step))[0])
                        for r in range(0, n, rows_step))
        order.append(chosen)
        si.append(count / n)
        # Patience: a step is a gain when it beats the best SI so far by more than tolerance.
        stale = 0 if si[-1] > best + tolerance else stale + 1
        best = max(best, si[-1])
        if progress is not None:
            progress(list(order), list(si), min(max_features, n_features))
        if patience is not None and stale >= patience and remaining:
            stopped = "patience"
            break
    return order, si, stopped


def _check_resume(resume, n_features: int) -> list[int]:
    if resume is None:
        return []
    chosen = [int(f) for f in resume]
    if any(f != g for f, g in zip(chosen, resume)) or len(set(chosen)) != len(chosen) \
            or any(not 0 <= f < n_features for f in chosen):
        raise ValueError(f"resume must list distinct feature indices in [0, {n_features}), "
                         f"got {list(resume)!r}")
    return chosen


def _chunk_entries(device: torch.device, memory_budget: float) -> int:
    """Entries per temporary: the budget's share, and cache-sized on CPU."""
    entries = max(1, int(memory_budget // ENTRY_BYTES))
    return min(entries, CPU_CHUNK) if device.type == "cpu" else entries


# ----------------------------------------------------------------------------------------
# Naive reference


def forward_select_naive(
    features,
    labels,
    unit: str = "channel",
    max_features: int | None = None,
    *,
    patience: int | None = None,
    tolerance: float = 0.0,
    device=None,
    batch_size: int | None = None,
    memory_budget: float = MEMORY_BUDGET,
    progress: Callable[[list[int], list[float], int], None] | None = None,
    resume: Sequence[int] | None = None,
) -> Selection:
    """Reference forward selection, written apart from the fast path: at every step, for every
    remaining candidate, the N x N squared distances on the values of (selected + candidate)
    are computed from scratch (value by value, differences taken directly, float64), every
    sample's nearest other is found by argmin (self excluded, lowest index on ties), and the
    candidate with the most hits wins (lowest index on ties).

    Each distance is the sum of the same float64 squares in the same order as in
    `forward_select` (per feature, value by value; features in the order of addition), so
    both see the same bits and must choose the same features. Same arguments and results as
    `forward_select`; `batch_size` and `memory_budget` are unused (its memory is one N x N
    matrix, its time N^2 x L x (selected + 1) per candidate and step).
    """
    t0 = time.perf_counter()
    dev = pick_device(device)
    x, y = _candidates(features, labels, unit, dev)  # (F, L, N), (N,)
    n_features, n_values, n = x.shape
    max_features = _check_options(n_features, max_features, patience, tolerance, batch_size,
                                  memory_budget)
    pending = _check_resume(resume, n_features)

    def hits(feats: list[int]) -> int:
        d = torch.zeros(n, n, dtype=torch.float64, device=dev)  # (N, N)
        d.fill_diagonal_(float("inf"))  # self excluded by index
        for f in feats:  # in the order of addition
            square_sum = 0.0
            for v in range(n_values):  # value by value
                diff = x[f, v][:, None] - x[f, v][None, :]  # (N, N)
                square_sum = square_sum + diff * diff
            d += square_sum
        return int((y[d.argmin(dim=1)] == y).sum())

    order, si = [], []
    remaining = list(range(n_features))
    best, stale, stopped = float("-inf"), 0, "exhausted"
    while remaining:
        if len(order) >= max_features:
            stopped = "max_features"
            break
        if pending:  # an interrupted ranking: its choices first, their SI counted afresh
            chosen = pending.pop(0)
            count = hits(order + [chosen])
        else:
            counts = [hits(order + [c]) for c in remaining]
            chosen, count = remaining[counts.index(max(counts))], max(counts)
        remaining.remove(chosen)
        order.append(chosen)
        si.append(count / n)
        stale = 0 if si[-1] > best + tolerance else stale + 1  # a gain beats the best by > tolerance
        best = max(best, si[-1])
        if progress is not None:
            progress(list(order), list(si), min(max_features, n_features))
        if patience is not None and stale >= patience and remaining:
            stopped = "patience"
            break
    return Selection(order, si, unit, n, n_features, stopped, time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------
# Fast exact selection: dense first step, then probes, bounds and sorted-row prefixes


def _dense_hits(x, y, d, cands: list[int], chunk: int, batch_size) -> torch.Tensor:
    """Hits of each candidate with D + Dc on all pairs, in blocks of `chunk` entries: (B,)."""
    n = d.shape[0]
    batch = max(1, min(batch_size or len(cands), chunk // (n * n)))
    rows_step = max(1, chunk // (n * batch))
    hits = []
    for i in range(0, len(cands), batch):
        group = cands[i:i + batch]
        h = torch.zeros(len(group), dtype=torch.int64, device=d.device)
        for r in range(0, n, rows_step):
            rows = slice(r, min(n, r + rows_step))
            h += _hits(d[None, rows] + _dense_contribution(x, group, rows), y, rows)  # (B, R, N)
        hits.append(h)
    return torch.cat(hits)


def _probe(x, y, d, cands: list[int], probe: int, chunk: int, batch_size):
    """Evaluate every candidate on each sample's `probe` nearest entries of D.

    For candidate c and sample q, t = min over the probes r of D[q, r] + Dc[q, r] is an exact
    distance, so the new nearest distance is <= t, and a point j can be the new neighbour only
    if D[q, j] <= t (D + Dc >= D). If t is below every non-probed D[q, j] the neighbour is
    among the probes: that sample is settled here. Returns per candidate the hits of settled
    samples (B,), plus t (B, N) and the unsettled mask (B, N).
    Temporaries: about ENTRY_BYTES per (candidate, sample, probe) entry, whatever the number
    L of values per candidate, since the values are read one at a time.
    """
    n = d.shape[0]
    k = min(probe, n - 1)
    pv, pi = torch.topk(d, k + 1, dim=1, largest=False)  # (N, K+1) ascending
    floor = pv[:, k]  # every non-probed j has D[q, j] >= floor
    pv, pi = pv[:, :k], pi[:, :k]
    batch = max(1, min(batch_size or len(cands), chunk // (n * k)))
    hits, ts, open_ = [], [], []
    for i in range(0, len(cands), batch):
        group = torch.as_tensor(cands[i:i + batch], device=x.device)

        def diff(l):  # one value of the batch at a time, not a (B, L, N) copy
            xl = x[:, l][group]  # (B, N)
            return xl[:, :, None] - xl[:, pi]  # (B, N, K)

        dist = pv + _sq_contribution(diff, x.shape[1])  # (B, N, K)
        t = dist.amin(dim=-1)  # (B, N)
        nn = torch.where(dist == t[..., None], pi, n).amin(dim=-1)  # lowest index among ties
        settled = t < floor
        hits.append(((y[nn] == y) & settled).sum(dim=1))
        ts.append(t)
        open_.append(~settled)
    return torch.cat(hits), torch.cat(ts), torch.cat(open_)


def _count_le(svals: torch.Tensor, srow: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per segment s, how many entries of the ascending row svals[srow[s]] are <= t[s]."""
    n = svals.shape[1]
    lo = torch.zeros_like(srow)
    hi = torch.full_like(srow, n)
    for _ in range(n.bit_length()):  # binary search, all segments at once
        mid = (lo + hi) // 2
        le = svals[srow, mid.clamp(max=n - 1)] <= t
        lo = torch.where((lo < hi) & le, mid + 1, lo)
        hi = torch.where((lo < hi) & ~le, mid, hi)
    return lo


def _row_hits(x, y, d, c: int, rows: torch.Tensor, chunk: int) -> int:
    """Hits among samples `rows` for candidate c, with D + Dc on their whole rows."""
    n = d.shape[0]
    hits = 0
    step = max(1, chunk // n)
    for r in range(0, len(rows), step):
        q = rows[r:r + step]
        dist = d[q] + _sq_contribution(lambda l: x[c, l, q, None] - x[c, l, None, :], x.shape[1])  # (R, N)
        hits += int((y[dist.argmin(dim=1)] == y[q]).sum())
    return hits


def _prefix_hits(x, y, svals, sidx, srow, q, c, m, chunk: int) -> torch.Tensor:
    """Whether the new nearest neighbour of sample q[s] under candidate c[s] shares its label,
    evaluating D + Dc on the first m[s] entries of its sorted row svals[srow[s]]: (S,) bool.
    """
    n_seg = len(m)
    nn = torch.empty(n_seg, dtype=torch.int64, device=m.device)
    ends = torch.cumsum(m, 0)
    block = (ends - m) // chunk  # consecutive segments, about `chunk` pairs per block
    bounds = torch.searchsorted(block, torch.arange(int(block[-1]) + 2, device=m.device)).tolist()
    for a, b in zip(bounds[:-1], bounds[1:]):
        if a == b:
            continue
        lengths = m[a:b]
        seg = torch.repeat_interleave(torch.arange(b - a, device=m.device), lengths)  # (P,)
        pos = torch.arange(len(seg), device=m.device) - (torch.cumsum(lengths, 0) - lengths)[seg]
        row, qs, cs = srow[a:b][seg], q[a:b][seg], c[a:b][seg]
        j = sidx[row, pos]
        dist = svals[row, pos] + _pair_contribution(x, cs, qs, j)  # (P,) same bits as D + Dc
        low = torch.full((b - a,), float("inf"), dtype=dist.dtype, device=dist.device)
        low = low.scatter_reduce(0, seg, dist, "amin")
        at_min = dist == low[seg]
        first = torch.full((b - a,), len(y), dtype=torch.int64, device=dist.device)
        nn[a:b] = first.scatter_reduce(0, seg[at_min], j[at_min], "amin")  # ties -> lowest index
    return y[nn] == y[q]


def forward_select(
    features,
    labels,
    unit: str = "channel",
    max_features: int | None = None,
    *,
    patience: int | None = None,
    tolerance: float = 0.0,
    device=None,
    batch_size: int | None = None,
    memory_budget: float = MEMORY_BUDGET,
    probe: int = PROBE,
    progress: Callable[[list[int], list[float], int], None] | None = None,
    resume: Sequence[int] | None = None,
) -> Selection:
    """Greedy forward selection of features by first-order SI (exact; see the module notes).

    features: (N, C, H, W) for unit="channel" (a feature is a channel, its H*W values
    together; (N, C, L) and (N, C) are accepted too), or (N, ...) for unit="element" (every
    flattened value is a feature); tensor or ndarray. labels: (N,), any values.
    max_features: stop after that many features (None, or more than there are: rank all).
    patience: stop early after `patience` consecutive steps none of which raised SI by more
    than `tolerance` over the best SI so far (the first step always counts as a gain). The
    features of those steps stay in the result; `best_size` gives the cut. None: never.
    device: where the distances are computed (None: CUDA when present, else CPU).
    batch_size: most candidates evaluated together (None: as many as `memory_budget` allows).
    memory_budget: bytes of temporaries per batch, beyond what a step keeps: D (8 N^2 bytes),
    the sorted rows of D that are needed (up to 16 N^2) and x.
    probe: nearest entries of each row of D evaluated first for every candidate and sample.
    progress: called as progress(order, si, steps) after each step, with the order and SI
    curve so far, e.g. to log how far the ranking is or to save it (steps: the most there can
    be, before any early stop).
    resume: the `order` of an interrupted ranking of the same features, labels and options:
    those features are taken first (their SI counted afresh) and the ranking goes on from
    there, to the same result as an uninterrupted run.
    features and labels may be on any device; they are copied to `device`, where every
    distance is computed. The result holds plain Python lists (host memory).
    """
    t0 = time.perf_counter()
    dev = pick_device(device)
    x, y = _candidates(features, labels, unit, dev)
    n_features, _, n = x.shape
    max_features = _check_options(n_features, max_features, patience, tolerance, batch_size, memory_budget)
    if not _positive_int(probe):
        raise ValueError(f"probe must be a positive integer, got {probe!r}")
    chunk = _chunk_entries(dev, memory_budget)
    max_batch = batch_size or n_features

    def best_candidate(selected, d, candidates):
        if not selected:  # D = 0: no bound, every candidate's own distances in full
            hits = _dense_hits(x, y, d, candidates, chunk, batch_size).tolist()
            k = max(range(len(candidates)), key=lambda i: (hits[i], -i))
            return k, hits[k]
        settled_hits, t, open_ = _probe(x, y, d, candidates, probe, chunk, batch_size)
        low = settled_hits.tolist()                        # hits known so far
        high = (settled_hits + open_.sum(dim=1)).tolist()  # if every unsettled sample hit
        # Candidates settled everywhere are exact. The others, most promising first, are
        # finished only while they can still win (more hits, or as many and a lower index).
        best = max([(low[i], -i) for i in range(len(candidates)) if low[i] == high[i]], default=(-1, 0))
        # No candidate ends below the most hits already known: once per step, not once per
        # candidate (that made a step O(C^2) in the number of candidates C).
        floor = max(low)
        todo = sorted((i for i in range(len(candidates)) if low[i] < high[i] and high[i] >= floor),
                      key=lambda i: (-high[i], i))
        if not todo:
            return -best[1], best[0]
        rows = open_[todo].any(dim=0).nonzero().squeeze(1)  # samples some candidate needs
        svals, sidx = torch.sort(d[rows], dim=1)            # (R, N) each, ascending
        row_of = torch.full((n,), -1, dtype=torch.int64, device=dev)
        row_of[rows] = torch.arange(len(rows), device=dev)
        b, q = open_[todo].nonzero(as_tuple=True)  # unsettled (candidate, sample), by candidate
        srow = row_of[q]
        m = _count_le(svals, srow, t[todo][b, q])   # prefix that can hold the new neighbour
        c = torch.tensor(candidates, device=dev)[todo][b]
        pairs = torch.zeros(len(todo), dtype=torch.int64, device=dev).index_add_(0, b, m).tolist()
        n_open = torch.bincount(b, minlength=len(todo)).tolist()
        # b is sorted, so todo[g]'s unsettled pairs are b[start[g]:start[g] + n_open[g]]:
        # slices instead of a scan of all of b per candidate (O(C^2) again).
        start = np.concatenate([[0], np.cumsum(n_open)[:-1]]).tolist()

        def finish(g: int, extra: int):
            nonlocal best
            k = todo[g]
            low[k] = high[k] = low[k] + extra
            best = max(best, (low[k], -k))

        i = 0
        while i < len(todo):
            group, size = [], 0  # positions in todo, about `chunk` pairs in all
            while i < len(todo) and len(group) < max_batch and (not group or size + pairs[i] <= chunk):
                g, i = i, i + 1
                if (high[todo[g]], -todo[g]) <= best:
                    continue  # cannot win any more
                if pairs[g] * PAIR_COST > n_open[g] * n:  # long prefixes: whole rows are cheaper
                    own = q[start[g]:start[g] + n_open[g]]
                    finish(g, _row_hits(x, y, d, candidates[todo[g]], own, chunk))
                    continue
                group.append(g)
                size += pairs[g]
            if not group:
                continue
            lengths = torch.tensor([n_open[g] for g in group], device=dev)  # group's pairs, by candidate
            member = torch.repeat_interleave(torch.arange(len(group), device=dev), lengths)
            firsts = torch.tensor([start[g] for g in group], device=dev)
            offset = torch.arange(len(member), device=dev) - (torch.cumsum(lengths, 0) - lengths)[member]
            segs = firsts[member] + offset  # positions in b of the group's pairs, in order
            hit = _prefix_hits(x, y, svals, sidx, srow[segs], q[segs], c[segs], m[segs], chunk)
            extra = torch.zeros(len(group), dtype=torch.int64, device=dev).index_add_(0, member, hit.long())
            for g, e in zip(group, extra.tolist()):
                finish(g, e)
        return -best[1], best[0]

    order, si, stopped = _greedy(x, y, max_features, patience, tolerance, chunk, best_candidate,
                                 progress, resume)
    return Selection(order, si, unit, n, n_features, stopped, time.perf_counter() - t0)
