import builtins
import weakref

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import sicompress.selection as selection
from sicompress.selection import Selection, forward_select, forward_select_naive

from conftest import on_cuda_only


def relu_features(n=90, channels=10, hw=2, classes=4, seed=0, quantise=False):
    """ReLU of Gaussians with class-dependent channel means; quantised -> small integers,
    so exact ties between distances (and between candidates' SI) are everywhere."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    means = torch.randn(classes, channels, 1, 1, generator=g)
    x = torch.relu(means[y] + torch.randn(n, channels, hw, hw, generator=g) - 0.3)  # (N, C, hw, hw)
    if quantise:
        x = torch.round(1.5 * x)
    return x, y


def brute_si(x: np.ndarray, y: np.ndarray) -> float:
    """LOO 1-NN accuracy by the obvious loop; argmin takes the lowest index on ties."""
    x = x.reshape(len(x), -1).astype(np.float64)
    hits = 0
    for q in range(len(x)):
        dist = ((x - x[q]) ** 2).sum(axis=1)
        dist[q] = np.inf
        hits += y[int(np.argmin(dist))] == y[q]
    return hits / len(x)


def sklearn_si(x: np.ndarray, y: np.ndarray) -> float:
    """LOO 1-NN accuracy with scikit-learn (kneighbors() without X leaves each point out)."""
    x = x.reshape(len(x), -1)
    nn = KNeighborsClassifier(n_neighbors=1).fit(x, y).kneighbors(return_distance=False)[:, 0]
    return float(np.mean(y[nn] == y))


def columns(x: torch.Tensor, unit: str, feats) -> np.ndarray:
    """The values of features `feats` as (N, k, L)."""
    n = x.shape[0]
    flat = x.reshape(n, x.shape[1], -1) if unit == "channel" else x.reshape(n, -1, 1)
    return flat[:, list(feats)].numpy()


# ----------------------------------------------------------------------------------------
# Fast == naive reference


@pytest.mark.parametrize("quantise", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_equals_naive_channels(seed, quantise):
    x, y = relu_features(seed=seed, quantise=quantise)
    ref = forward_select_naive(x, y)
    for kw in ({}, {"probe": 1}, {"probe": 2, "memory_budget": 20_000, "batch_size": 2}):
        got = forward_select(x, y, **kw)
        assert got.order == ref.order, kw
        assert got.si == ref.si, kw
    assert sorted(ref.order) == list(range(10))


@pytest.mark.parametrize("quantise", [False, True])
@pytest.mark.parametrize("seed", [3, 4])
def test_fast_equals_naive_elements(seed, quantise):
    x, y = relu_features(n=70, channels=5, seed=seed, quantise=quantise)  # 20 elements
    ref = forward_select_naive(x, y, unit="element", max_features=12)
    got = forward_select(x, y, unit="element", max_features=12, probe=2)
    assert len(ref.order) == 12
    assert (got.order, got.si) == (ref.order, ref.si)
    # an element is a channel of length 1
    flat = forward_select(x.reshape(len(x), -1), y, unit="channel", max_features=12)
    assert (flat.order, flat.si) == (got.order, got.si)


@pytest.mark.parametrize("pair_cost", [0, 10**9])  # gathered prefixes only / whole rows only
def test_both_finishing_paths_agree_and_run(monkeypatch, pair_cost):
    """The finishing paths run (so the agreement above is not only the dense first step)."""
    calls = {"_prefix_hits": 0, "_row_hits": 0}
    for name in calls:
        real = getattr(selection, name)

        def spy(*args, _real=real, _name=name, **kw):
            calls[_name] += 1
            return _real(*args, **kw)

        monkeypatch.setattr(selection, name, spy)
    monkeypatch.setattr(selection, "PAIR_COST", pair_cost)
    x, y = relu_features(seed=5, quantise=True)
    got = forward_select(x, y, probe=1, max_features=6)
    ref = forward_select_naive(x, y, max_features=6)
    assert (got.order, got.si) == (ref.order, ref.si)
    used = "_prefix_hits" if pair_cost == 0 else "_row_hits"
    assert calls[used] > 0 and sum(calls.values()) == calls[used]


@pytest.mark.parametrize("quantise", [False, True])
@pytest.mark.parametrize("pair_cost", [0, 10**9])  # gathered prefixes only / whole rows only
def test_many_candidates_equal_naive_and_sklearn(monkeypatch, pair_cost, quantise):
    """240 candidates (elements), most of them unsettled by one probe: the finishing paths
    handle many candidates at once, in groups."""
    monkeypatch.setattr(selection, "PAIR_COST", pair_cost)
    x, y = relu_features(n=60, channels=60, hw=2, seed=13, quantise=quantise)
    ref = forward_select_naive(x, y, unit="element", max_features=6)
    got = forward_select(x, y, unit="element", max_features=6, probe=1, memory_budget=50_000)
    assert (got.order, got.si) == (ref.order, ref.si)
    if not quantise:  # no exact ties, which scikit-learn breaks its own way
        for i in range(len(got.order)):
            assert got.si[i] == sklearn_si(columns(x, "element", got.order[:i + 1]), y.numpy())


# ----------------------------------------------------------------------------------------
# Independent checks of the SI curve and of the greedy choice


@pytest.mark.parametrize("unit", ["channel", "element"])
def test_si_curve_matches_sklearn(unit):
    g = torch.Generator().manual_seed(6)
    y = torch.arange(80) % 4
    x = torch.randn(4, 6, 1, 1, generator=g)[y] + torch.randn(80, 6, 2, 2, generator=g)  # no ties
    sel = forward_select(x, y, unit=unit, max_features=8)
    for i in range(len(sel.order)):
        expected = sklearn_si(columns(x, unit, sel.order[: i + 1]), y.numpy())
        assert sel.si[i] == pytest.approx(expected, abs=1e-12)


def test_each_step_is_the_best_candidate_with_ties():
    """On integer data (exact distances) every choice is the brute-force best, lowest index
    first among equal SI, and si[i] is the brute-force SI of order[:i+1]."""
    x, y = relu_features(n=50, channels=7, seed=7, quantise=True)
    x[:, 5], x[:, 6] = x[:, 1], x[:, 3]  # duplicates tie with their originals
    sel = forward_select(x, y, probe=1)
    ties = 0
    for i, chosen in enumerate(sel.order):
        rest = [c for c in range(7) if c not in sel.order[:i]]
        scores = [brute_si(columns(x, "channel", sel.order[:i] + [c]), y.numpy()) for c in rest]
        assert chosen == rest[int(np.argmax(scores))]
        assert sel.si[i] == scores[int(np.argmax(scores))]
        ties += scores.count(max(scores)) > 1
    assert ties > 0  # the data does exercise the tie rule


def test_picks_informative_channels_first():
    g = torch.Generator().manual_seed(8)
    n, channels, informative = 200, 24, [5, 11, 17]
    y = torch.arange(n) % 5
    x = torch.randn(n, channels, 2, 2, generator=g)
    levels = torch.stack([torch.randperm(5, generator=g) for _ in informative], dim=1)  # (5, 3)
    x[:, informative] += levels[y][..., None, None].float()  # each alone separates them in part
    sel = forward_select(torch.relu(x), y, max_features=5)
    assert sorted(sel.order[:3]) == informative
    assert sel.si[2] > 0.95 and sel.si[0] < 0.8


# ----------------------------------------------------------------------------------------
# Work and memory that must not grow with the wrong size (counted, not timed)


def test_a_step_takes_the_most_known_hits_once_not_once_per_candidate(monkeypatch):
    """The bound of a step (the most hits already known) taken once per step: taken inside
    the filter over the candidates it made a step O(C^2) and a ranking O(C^3) in the number
    of candidates C. Counts every value the module's max() reads."""
    x, y = relu_features(n=60, channels=60, hw=2, seed=12)  # 240 elements
    steps = 5
    ref = forward_select_naive(x, y, unit="element", max_features=steps)
    read = []

    def counting_max(*args, **kw):
        if len(args) == 1:  # max(iterable): count the values it reads
            args = (list(args[0]),)
            read.append(len(args[0]))
        return builtins.max(*args, **kw)

    monkeypatch.setattr(selection, "max", counting_max, raising=False)
    got = forward_select(x, y, unit="element", max_features=steps, probe=1)
    assert (got.order, got.si) == (ref.order, ref.si)
    candidates = sum(240 - i for i in range(steps))  # C of every step, summed
    assert 0 < sum(read) <= 3 * candidates


class LiveBytes(TorchDispatchMode):
    """The most bytes that the tensors made while the mode is on hold at one time: a
    storage counts from the op that makes it until no tensor on it is left."""

    def __init__(self):
        super().__init__()
        self.refs, self.size, self.now, self.peak = {}, {}, 0, 0

    def _release(self, key):
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.now -= self.size.pop(key)
            del self.refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = {t.untyped_storage().data_ptr()
                 for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key not in self.refs:
                if key in given or storage.nbytes() == 0:
                    continue  # a view of, or written into, a tensor made before
                self.refs[key], self.size[key] = 0, storage.nbytes()
                self.now += storage.nbytes()
                self.peak = max(self.peak, self.now)
            self.refs[key] += 1
            weakref.finalize(t, self._release, key)
        return out


def test_live_bytes_counts_what_is_alive():
    live = LiveBytes()
    with live:
        a = torch.zeros(1000, dtype=torch.float64)  # 8000 bytes
        b = torch.zeros(2000, dtype=torch.float64)  # 16000
        view = a[:10]
        del a                                        # kept by the view
        c = torch.zeros(500, dtype=torch.float64)   # 28000 in all
        del view
        d = b + 1                                    # 8000 freed, 16000 more: 36000
        d += 1
    assert (live.peak, live.now) == (36000, 36000)
    del b, c, d
    assert live.now == 0


@pytest.mark.parametrize("hw", [1, 4, 8])  # L = 1, 16 or 64 values per channel
def test_probe_temporaries_fit_the_budget_whatever_the_map_size(hw):
    n, probe = 60, 2
    x, y = relu_features(n=n, channels=12, hw=hw, seed=14)
    cpu = torch.device("cpu")
    xs, ys = selection._candidates(x, y, "channel", cpu)  # (F, L, N)
    d = selection._empty_distances(n, cpu) + selection._dense_contribution(xs, [0])[0]  # (N, N)
    budget = selection.ENTRY_BYTES * n * probe * 3  # three candidates' (sample, probe) entries
    chunk = selection._chunk_entries(cpu, budget)
    live = LiveBytes()
    with live:
        batched = selection._probe(xs, ys, d, list(range(1, 12)), probe, chunk, None)
    assert live.peak <= budget  # everything it made, its results included
    whole = selection._probe(xs, ys, d, list(range(1, 12)), probe, 10**9, None)  # one batch
    assert all(torch.equal(a, b) for a, b in zip(batched, whole))
    # and a whole ranking at that budget chooses as the reference does
    got = forward_select(x, y, max_features=4, probe=probe, memory_budget=budget)
    ref = forward_select_naive(x, y, max_features=4)
    assert (got.order, got.si) == (ref.order, ref.si)


# ----------------------------------------------------------------------------------------
# Stopping rules and inputs


def test_max_features_and_patience():
    x, y = relu_features(n=60, channels=12, seed=9)
    full = forward_select(x, y)
    assert len(full.order) == 12 and full.stopped == "exhausted"
    assert isinstance(full, Selection) and full.unit == "channel" and full.n_samples == 60
    few = forward_select(x, y, max_features=4)
    assert few.order == full.order[:4] and few.si == full.si[:4] and few.stopped == "max_features"
    assert forward_select(x, y, max_features=99).order == full.order

    # patience p: stop after p consecutive steps that do not beat the best SI so far
    for p in (1, 2):
        stale, best, expected = 0, -1.0, None
        for i, s in enumerate(full.si):
            stale, best = (0, s) if s > best else (stale + 1, best)
            if stale == p:
                expected = i + 1
                break
        stop = forward_select(x, y, patience=p)
        assert expected is not None and expected < 12
        assert stop.order == full.order[:expected] and stop.stopped == "patience"
        assert stop.best_size == int(np.argmax(stop.si)) + 1
    # a large tolerance counts only the first step as a gain
    assert len(forward_select(x, y, patience=2, tolerance=1.0).order) == 3
    assert forward_select_naive(x, y, patience=2).order == forward_select(x, y, patience=2).order


def test_numpy_input_and_any_labels():
    x, y = relu_features(n=40, channels=5, seed=10)
    names = np.array(["cat", "dog", "eel", "fox"])[y.numpy()]
    a = forward_select(x.numpy(), names)
    assert (a.order, a.si) == (forward_select(x, y).order, forward_select(x, y).si)


@pytest.mark.parametrize("fn", [forward_select, forward_select_naive])
def test_bad_inputs(fn):
    x, y = relu_features(n=20, channels=3)
    with pytest.raises(ValueError, match="unit"):
        fn(x, y, unit="pixel")
    with pytest.raises(ValueError, match="shape"):
        fn(x[:, 0, 0, 0], y)
    with pytest.raises(ValueError, match="channel"):
        fn(x[..., None], y)
    with pytest.raises(ValueError, match="N=20 samples but labels have 19"):
        fn(x, y[:19])
    with pytest.raises(ValueError, match="labels must be 1-D"):
        fn(x, y[:, None])
    with pytest.raises(ValueError, match="at least 2 samples"):
        fn(x[:1], y[:1])
    with pytest.raises(ValueError, match="NaN"):
        fn(torch.where(x > 0.5, float("nan"), x), y)
    with pytest.raises(ValueError, match="max_features"):
        fn(x, y, max_features=0)
    with pytest.raises(ValueError, match="max_features"):
        fn(x, y, max_features=2.5)
    with pytest.raises(ValueError, match="patience"):
        fn(x, y, patience=0)
    with pytest.raises(ValueError, match="tolerance"):
        fn(x, y, tolerance=-0.1)


@on_cuda_only("compares the ranking on CUDA with the CPU's")
@pytest.mark.parametrize("quantise", [False, True])
def test_cuda_equals_cpu(device, quantise):
    x, y = relu_features(n=300, channels=16, seed=11, quantise=quantise)
    cpu = forward_select_naive(x, y, device="cpu")
    for fn in (forward_select, forward_select_naive):
        gpu = fn(x.to(device), y.to(device), device=device)
        assert (gpu.order, gpu.si) == (cpu.order, cpu.si), fn.__name__


@pytest.mark.parametrize("fn", [forward_select, forward_select_naive])
def test_progress_reports_every_step_and_changes_nothing(fn):
    x, y = relu_features(seed=3)
    seen = []
    with_progress = fn(x, y, max_features=6, progress=lambda *a: seen.append(a))
    plain = fn(x, y, max_features=6)
    assert with_progress.order == plain.order and with_progress.si == plain.si
    assert seen == [(plain.order[:i + 1], plain.si[:i + 1], 6) for i in range(6)]


def test_progress_lines_are_throttled():
    from sicompress.compression import progress_every

    lines = []
    every_step = progress_every(0.0, "channel", lines.append)
    for step in range(1, 4):
        every_step(list(range(step)), [0.5] * step, 3)
    assert len(lines) == 3 and lines[0].startswith("ranking: 1 of at most 3 channels chosen, SI 0.5000")
    lines.clear()
    rarely = progress_every(3600.0, "channel", lines.append)
    for step in range(1, 4):
        rarely(list(range(step)), [0.5] * step, 3)
    assert len(lines) == 1  # the first step only


@pytest.mark.parametrize("fn", [forward_select, forward_select_naive])
@pytest.mark.parametrize("unit,seed", [("channel", 0), ("channel", 5), ("element", 1)])
def test_an_interrupted_ranking_resumes_to_the_same_result(fn, unit, seed):
    x, y = relu_features(n=70, channels=8, seed=seed, quantise=seed == 5)  # ties too
    whole = fn(x, y, unit=unit, max_features=12)
    for cut in (1, 4, len(whole.order)):
        resumed = fn(x, y, unit=unit, max_features=12, resume=whole.order[:cut])
        assert resumed.order == whole.order and resumed.si == whole.si, cut


def test_resume_with_patience_and_bad_resume():
    x, y = relu_features(seed=2)
    whole = forward_select(x, y, patience=2, tolerance=0.02)
    again = forward_select(x, y, patience=2, tolerance=0.02, resume=whole.order)
    assert (again.order, again.si, again.stopped) == (whole.order, whole.si, whole.stopped)
    for bad in ([0, 0], [10], [-1], [0.5]):
        with pytest.raises(ValueError, match="resume must list distinct feature indices"):
            forward_select(x, y, resume=bad)
