import pytest
import torch

import tipkit.core.search as search
from tipkit.core.cache import build_cache
from tipkit.core.fusion import tip_logits
from tipkit.core.search import grid_search, paper_grid
from tipkit.errors import TipkitError


def official_loop(q, y, W, keys, values, betas, alphas):
    """The official double loop: the affinity recomputed per grid point, first strict maximum kept."""
    best = (0.0, 0.0, 0.0)
    grid = torch.zeros(len(betas), len(alphas), dtype=torch.float64)
    for i, b in enumerate(betas):
        for j, a in enumerate(alphas):
            logits = tip_logits(q, W, keys, values, float(a), float(b))
            acc = float((logits.argmax(-1) == y).double().mean() * 100)
            grid[i, j] = acc
            if acc > best[0]:
                best = (acc, float(b), float(a))
    return best, grid


def test_paper_grid_formula():
    betas, alphas = paper_grid((7, 3), (200, 20))
    assert len(betas) == 200 and len(alphas) == 20
    assert betas[0].item() == pytest.approx(0.1) and alphas[0].item() == pytest.approx(0.1)
    assert betas[1].item() == pytest.approx(0.1 + 6.9 / 200)
    assert alphas[-1].item() == pytest.approx(0.1 + 19 * 2.9 / 20)
    assert betas.max().item() < 7.0  # range(step) never reaches the scale itself
    with pytest.raises(TipkitError, match="positive integer"):
        paper_grid((7, 3), (0, 20))


@pytest.mark.parametrize("budget", [search.MEMORY_BUDGET, 200_000])  # also several query chunks
@pytest.mark.parametrize("layout", ["grouped", "shuffled", "dense"])
def test_grid_search_equals_double_loop(problem, budget, layout):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    if layout == "shuffled":  # keys not grouped by class: the per-class sum is an index-add
        perm = torch.randperm(len(keys), generator=torch.Generator().manual_seed(0))
        keys, values = keys[perm], values[perm]
    elif layout == "dense":  # values that are not one-hot (e.g. fine-tuned): the dense product
        values = values * 0.9 + 0.1 / values.shape[1]
    q, y, W = problem["queries"], problem["labels_q"], problem["W"]
    W = W * 0.05 + torch.randn_like(W) * 0.01  # weak zero-shot so alpha and beta matter
    betas, alphas = paper_grid((10, 10), (25, 7))
    r = grid_search(q, y, W, keys, values, betas, alphas, memory_budget=budget)
    (acc, b, a), grid = official_loop(q, y, W, keys, values, betas, alphas)
    assert torch.allclose(r.grid, grid)
    assert (r.best_acc, r.best_beta, r.best_alpha) == (pytest.approx(acc), pytest.approx(b), pytest.approx(a))
    assert r.grid.max().item() > r.grid.min().item()  # the grid is not flat, so the test can fail


def test_ties_go_to_first_in_beta_major_order(problem):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    q, y, W = problem["queries"], problem["labels_q"], problem["W"]
    # alpha = 0 everywhere gives every cell the zero-shot accuracy: a full tie
    r = grid_search(q, y, W, keys, values, [1.0, 2.0, 3.0], [0.0, 0.0])
    assert (r.best_beta, r.best_alpha) == (1.0, 0.0)
    assert r.grid.unique().numel() == 1


def test_empty_grid_rejected(problem):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    with pytest.raises(TipkitError, match="at least one"):
        grid_search(problem["queries"], problem["labels_q"], problem["W"], keys, values, [], [1.0])
