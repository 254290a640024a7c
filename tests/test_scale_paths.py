"""The paths that make tipkit hold at the paper's scale: one-hot values, the grid scorer, the β schedule,
chunked prediction under a memory budget, and the searches of Tip-X and APE against their official loops."""

from __future__ import annotations

import itertools

import pytest
import torch

import tipkit.core.grid as grid_mod
from tipkit.core.cache import OneHot, as_one_hot, build_cache, l2_normalize
from tipkit.core.fusion import tip_logits
from tipkit.core.grid import exp_schedule, grid_argmax, line_argmax
from tipkit.core.search import grid_search, paper_grid
from tipkit.methods import FewShotData, get_method
from tipkit.methods.base import linear_grid
from tipkit.methods.tipx import kl_divergence, signatures


@pytest.fixture
def bisect(monkeypatch):
    """Force the corner-subdivision scorer even on small problems."""
    monkeypatch.setattr(grid_mod, "DENSE_LIMIT", 0)


def test_one_hot_product_equals_the_dense_product():
    gen = torch.Generator().manual_seed(0)
    weights = torch.rand(7, 12, generator=gen)
    grouped = torch.arange(4).repeat_interleave(3)
    shuffled = grouped[torch.randperm(12, generator=gen)]
    scale = torch.rand(12, generator=gen)
    for labels in (grouped, shuffled):
        v = OneHot(labels, 4)
        dense = torch.nn.functional.one_hot(labels, 4).float()
        assert torch.allclose(v.matmul(weights), weights @ dense, atol=1e-6)
        assert torch.allclose(v.with_scale(scale).matmul(weights), weights @ (dense * scale[:, None]), atol=1e-6)
        scales = torch.rand(5, 12, generator=gen)
        many = v.matmul_scales(weights, scales)
        assert many.shape == (5, 7, 4)
        assert torch.allclose(many, torch.stack([weights @ (dense * s[:, None]) for s in scales]), atol=1e-6)
    assert OneHot(grouped, 4).group == 3 and OneHot(shuffled, 4).group is None
    assert as_one_hot(torch.nn.functional.one_hot(shuffled, 4).float()).labels.tolist() == shuffled.tolist()
    assert as_one_hot(torch.full((3, 2), 0.5)) is None  # soft values stay dense


def test_exp_schedule_tracks_exact_exp_on_an_even_grid():
    d = torch.rand(50, 300, generator=torch.Generator().manual_seed(1)) * 2.0
    betas = paper_grid((7.0, 3.0), (200, 20))[0].tolist()
    for beta, got in zip(betas, exp_schedule(d, betas)):
        exact = torch.exp(-beta * d)  # itself within ~0.5 ulp(β·d) ≈ 5e-7 (relative) of the true value at β·d ≈ 14
        assert torch.allclose(got, exact, rtol=3e-6, atol=0), beta
    uneven = [0.5, 1.0, 4.0]
    for beta, got in zip(uneven, exp_schedule(d, uneven)):
        assert torch.equal(got, torch.exp(-beta * d))


@pytest.mark.parametrize("dims", [(17,), (6, 9)])
def test_grid_argmax_equals_scoring_every_point(bisect, dims):
    gen = torch.Generator().manual_seed(2)
    n, c = 400, 6
    base = torch.randn(n, c, generator=gen) * 3
    terms = [torch.randn(n, c, generator=gen) for _ in dims]
    weights = [torch.rand(j, generator=gen) * 4 for j in dims]
    weights[0][1] = weights[0][3]  # a duplicate value, and the axis is unsorted
    pred = grid_argmax(base, terms, weights)
    assert pred.shape == (n, *dims)
    for point in itertools.product(*(range(j) for j in dims)):
        logits = base
        for t, w, i in zip(terms, weights, point):
            logits = logits + t * w[i]
        assert torch.equal(pred[(slice(None), *point)], logits.argmax(-1)), point


def test_grid_argmax_stacked_rows_share_one_base(bisect):
    """APE's γ variants: ``[G·N, C]`` terms over one ``[N, C]`` base equal the repeated base, point by point."""
    gen = torch.Generator().manual_seed(5)
    n, c, g = 150, 7, 3
    base = torch.randn(n, c, generator=gen) * 3
    term = torch.rand(g * n, c, generator=gen) * 5
    weights = torch.rand(13, generator=gen) * 4
    pred = grid_argmax(base, [term], [weights])
    assert pred.shape == (g * n, 13)
    for j, w in enumerate(weights):
        assert torch.equal(pred[:, j], (base.repeat(g, 1) + term * w).argmax(-1)), j
    with pytest.raises(ValueError, match="do not stack"):
        grid_argmax(base, [term[:-1]], [weights])


@pytest.mark.parametrize("case", ["positive", "signed", "ties"])
def test_line_argmax_equals_scoring_every_point(bisect, case):
    """APE's scorer: ``[N, G, C]`` lines over one ``[N, C]`` base, every weight scored as directly (ties included)."""
    gen = torch.Generator().manual_seed({"positive": 7, "signed": 8, "ties": 9}[case])
    n, g, c = 300, 4, 40
    base = torch.randn(n, c, generator=gen) * 3
    term = torch.rand(n, g, c, generator=gen) * 5 if case != "signed" else torch.randn(n, g, c, generator=gen)
    weights = torch.rand(11, generator=gen) * 4 - (2.0 if case == "signed" else 0.0)
    weights[2] = weights[5]  # a duplicate value, and the axis is unsorted
    if case == "ties":  # coarse values: many exact ties between classes
        base, term, weights = (base * 2).round() / 2, (term * 2).round() / 2, torch.linspace(0.5, 3.0, 11)
    pred = line_argmax(base, term, weights)
    assert pred.shape == (n, g, 11)
    for j, w in enumerate(weights):
        assert torch.equal(pred[:, :, j], (term * w + base.unsqueeze(1)).argmax(-1)), j
    with pytest.raises(ValueError, match="does not stack"):
        line_argmax(base[:-1], term, weights)


def official_tip_loop(q, y, W, keys, values, betas, alphas):
    grid = torch.zeros(len(betas), len(alphas), dtype=torch.float64)
    for i, b in enumerate(betas):
        for j, a in enumerate(alphas):
            grid[i, j] = float((tip_logits(q, W, keys, values, float(a), float(b)).argmax(-1) == y).double().mean() * 100)
    return grid


def test_grid_search_bisection_and_chunks_equal_the_double_loop(bisect, problem):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    q, y = problem["queries"], problem["labels_q"]
    W = l2_normalize(problem["W"] * 0.05 + 0.01 * torch.randn(problem["W"].shape, generator=torch.Generator().manual_seed(3)))
    betas, alphas = paper_grid((10, 10), (40, 9))
    r = grid_search(q, y, W, keys, values, betas, alphas, memory_budget=150_000)  # several chunks of queries
    official = official_tip_loop(q, y, W, keys, values, betas, alphas)
    # float rounding (the β schedule's multiplies, the per-class sums) may move one query at a near-tie
    diff = (r.grid - official).abs()
    assert diff.max() <= 100.0 / len(y) + 1e-9 and (diff > 1e-6).double().mean() < 0.02
    assert r.grid.max() > r.grid.min()


def _data(problem, seed=1):
    gen = torch.Generator().manual_seed(seed)
    c = problem["C"]
    val_y = torch.arange(c).repeat(12)
    centers = l2_normalize(problem["W"])
    val = l2_normalize(centers[val_y] + 0.9 * torch.randn(len(val_y), centers.shape[1], generator=gen))
    W = l2_normalize(problem["W"] + 0.8 * torch.randn(problem["W"].shape, generator=gen))  # weak text side
    return FewShotData(views=problem["views"], labels=problem["labels_k"], val=val, val_labels=val_y,
                       class_embeddings=W, seed=seed)


@pytest.mark.parametrize("scorer", ["direct", "lines"])
def test_tip_x_search_equals_the_official_triple_loop(problem, scorer, monkeypatch):
    if scorer == "lines":  # the scorer of large problems, forced on this small one
        monkeypatch.setattr(grid_mod, "DENSE_LIMIT", 0)
    data = _data(problem)
    betas, alphas, gammas = linear_grid(20, 7, 1.0), linear_grid(20, 5, 0.1), linear_grid(10, 6, 0.1)
    m = get_method("tip_x", betas=betas, alphas=alphas, gammas=gammas).fit(data)
    # the official loop (SuS-X tipx.py): α outermost, then β, then γ; the first strict maximum is kept
    q, y, W, keys, values, T = data.val, data.val_labels, data.class_embeddings, data.keys, data.values, 0.5
    kl = kl_divergence(signatures(q, W, T), signatures(keys, W, T))
    aff = q @ keys.T
    scaled = (kl - kl.min()) / (kl.max() - kl.min()) * (aff.max() - aff.min()) + aff.min()
    best, best_acc = None, -1.0
    for a in alphas:
        for b in betas:
            for g in gammas:
                logits = 100.0 * q @ W.T + a * torch.exp(-b * (1 - aff)) @ values + g * (-scaled @ values)
                acc = float((logits.argmax(-1) == y).double().mean() * 100)
                if acc > best_acc:
                    best, best_acc = (a, b, g), acc
    assert (m.alpha, m.beta, m.gamma) == best
    assert m.hyper["val_acc"] == pytest.approx(best_acc)


@pytest.mark.parametrize("scorer", ["direct", "lines"])
def test_ape_search_equals_the_official_loop(problem, scorer, monkeypatch):
    if scorer == "lines":  # the scorer of large problems, forced on this small one
        monkeypatch.setattr(grid_mod, "DENSE_LIMIT", 0)
    data = _data(problem, seed=2)
    betas, alphas, gammas = linear_grid(7, 9, 0.1), linear_grid(7, 6, 0.1), linear_grid(1, 4, 0.0)
    m = get_method("ape", betas=betas, alphas=alphas, gammas=gammas).fit(data)
    q, y, W, v = data.val, data.val_labels, data.class_embeddings, data.values
    k_sel = l2_normalize(data.keys[:, m.idx])
    aff = l2_normalize(q[:, m.idx]) @ k_sel.T
    best, best_acc = None, -1.0
    for b in betas:  # APE's main.py: β, then α, then γ; first strict maximum
        for a in alphas:
            for g in gammas:
                sv = v * torch.exp(g * m.div)
                logits = 100.0 * q @ W.T + (torch.exp(-b * (1 - aff)) @ sv) * a
                acc = float((logits.argmax(-1) == y).double().mean() * 100)
                if acc > best_acc:
                    best, best_acc = (b, a, g), acc
    assert (m.beta, m.alpha, m.gamma) == best
    assert m.hyper["val_acc"] == pytest.approx(best_acc)


@pytest.mark.parametrize("name", ["zero_shot", "tip_adapter", "tip_x", "ape", "gda", "lp_plus_plus", "linear_probe"])
def test_predict_streams_chunks_with_the_same_logits(problem, name):
    from methods_synth import FAST

    data = _data(problem)
    m = get_method(name, **FAST.get(name, {})).fit(data)
    whole = m.predict(problem["queries"])
    m.memory_budget = 1  # one query per chunk
    assert torch.allclose(m.predict(problem["queries"]), whole, atol=1e-4)


def test_linear_probe_at_a_thousand_classes_is_not_chance():
    """scikit-learn's lbfgs stopped at its all-zero start here (mean-loss gradient below tol): chance accuracy."""
    gen = torch.Generator().manual_seed(0)
    c, shots, d = 1000, 2, 256
    means = l2_normalize(torch.randn(c, d, generator=gen))
    labels = torch.arange(c).repeat_interleave(shots)
    views = means[labels].unsqueeze(0) + 0.05 * torch.randn(1, c * shots, d, generator=gen)
    val_y = torch.arange(c)
    val = l2_normalize(means[val_y] + 0.05 * torch.randn(c, d, generator=gen))
    data = FewShotData(views=views, labels=labels, val=val, val_labels=val_y,
                       class_embeddings=l2_normalize(torch.randn(c, d, generator=gen)))
    m = get_method("linear_probe", c_grid=[1.0, 1e2], search_steps=0, max_iter=100).fit(data)
    assert m.coef.abs().max() > 0
    acc = float((m.predict(val).argmax(-1) == val_y).double().mean() * 100)
    assert acc > 50.0, acc


def test_lean_cache_weights_are_bitwise_the_formula():
    from tipkit.core.fusion import cache_weights

    a = torch.rand(30, 40, generator=torch.Generator().manual_seed(4)) * 2 - 1
    for beta in (0.1, 1.7, 6.9):
        expected = torch.exp(-beta * (1.0 - a))
        assert torch.equal(cache_weights(a, beta), expected)
        assert torch.equal(cache_weights(a.clone(), beta, inplace=True), expected)
    a.requires_grad_(True)  # under autograd: the out-of-place formula, differentiable
    cache_weights(a, 2.0).sum().backward()
    assert a.grad is not None and torch.all(a.grad > 0)


@pytest.mark.slow
def test_ape_search_at_imagenet_shape_chooses_as_the_corner_scorer(monkeypatch):
    """At ImageNet's shape (C = 1,000, K = 16,000, 4,000 validation images) on the benchmark's CLIP-like features,
    APE's scorer (:func:`line_argmax`) and the corner-subdivision scorer it replaced (:func:`grid_argmax` on the
    γ variants stacked as rows) choose the same (α, β, γ) with the same validation accuracy, over a few β."""
    import tipkit.methods.ape as ape_mod
    from tipkit.bench.features import SHAPES, make_features

    data, _, _ = make_features(SHAPES["imagenet"], "clean")
    grid = {"betas": linear_grid(7.0, 200, 0.1)[:3]}  # the first β of the paper's grid; every α and γ
    new = get_method("ape", **grid).fit(data).hyper

    def corners(base, term, weights, scratch=None):  # [N, G, C] -> the former [G·N, C] stacking, and back
        n, g, c = term.shape
        pred = grid_argmax(base, [term.transpose(0, 1).reshape(g * n, c)], [weights])
        return pred.view(g, n, -1).transpose(0, 1)

    monkeypatch.setattr(ape_mod, "line_argmax", corners)
    old = get_method("ape", **grid).fit(data).hyper
    assert new == old


@pytest.mark.slow
def test_tip_x_search_at_imagenet_shape_chooses_as_the_corner_scorer(monkeypatch):
    """Tip-X's (α, γ) grid at ImageNet's shape: lines along γ over ``zs + α·cache`` scored by :func:`line_argmax`
    and by the corner-subdivision scorer (:func:`grid_argmax`, one α at a time) choose the same (α, β, γ) with
    the same validation accuracy."""
    import tipkit.methods.tipx as tipx_mod
    from tipkit.bench.features import SHAPES, make_features

    data, _, _ = make_features(SHAPES["imagenet"], "clean")
    grid = {"betas": linear_grid(50.0, 200, 1.0)[:2]}  # the first β of SuS-X's grid; every α and γ
    new = get_method("tip_x", **grid).fit(data).hyper

    def corners(lines, kl, gammas, scratch=None):  # [n, nα, C] lines over a shared [n, C] KL term
        return torch.stack([grid_argmax(lines[:, j], [kl], [gammas]) for j in range(lines.shape[1])], 1)

    monkeypatch.setattr(tipx_mod, "line_argmax", corners)
    old = get_method("tip_x", **grid).fit(data).hyper
    assert new == old
