"""Stage 4 of the paper: the α/β hyperparameter search.

The official code loops over every (β, α) pair and recomputes the affinity matmul and a dense
``[N, K] × [K, C]`` product each time. Here, per chunk of queries (sized to a memory budget, so N can be
ImageNet's 50,000), the affinity ``A = f Kᵀ`` is computed once; per β the cache weights
``exp(−β(1 − A))`` come from one multiply per element on the paper's evenly spaced β grid
(:func:`tipkit.core.grid.exp_schedule`), the one-hot values turn the product into a per-class sum
(:class:`tipkit.core.cache.OneHot`), and the α axis is scored by :func:`tipkit.core.grid.line_argmax`, which
evaluates a query only at the few α where its prediction changes. The grid of accuracies equals the official
double loop's, with its first-maximum tie rule (float rounding at a near-tie aside).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tipkit.core import blas
from tipkit.core.cache import as_one_hot
from tipkit.core.fusion import Values, apply_values, clip_logits
from tipkit.core.grid import exp_schedule, line_argmax
from tipkit.errors import TipkitError

MEMORY_BUDGET = 1 << 30  # bytes of working set beyond the inputs (≈ 1 GiB), whatever N is


@dataclass(frozen=True)
class SearchResult:
    """Outcome of :func:`grid_search`; ``grid[i, j]`` is the accuracy (%) at ``betas[i], alphas[j]``."""

    best_alpha: float
    best_beta: float
    best_acc: float
    grid: torch.Tensor
    betas: torch.Tensor
    alphas: torch.Tensor


def paper_grid(search_scale: tuple[float, float] = (7.0, 3.0), search_step: tuple[int, int] = (200, 20)) -> tuple[torch.Tensor, torch.Tensor]:
    """The official grid: ``0.1 + i·(scale − 0.1)/step`` for ``i in range(step)``.

    Args:
        search_scale: ``(scale_β, scale_α)``, e.g. ImageNet's ``(7, 3)``.
        search_step: ``(steps_β, steps_α)``, the paper uses ``(200, 20)``.

    Returns:
        ``(betas [steps_β], alphas [steps_α])`` as float64 tensors.
    """
    (sb, sa), (nb, na) = search_scale, search_step
    for name, n in (("beta", nb), ("alpha", na)):
        if int(n) != n or n < 1:
            raise TipkitError(f"search_step for {name} must be a positive integer, got {n!r}")
    betas = torch.tensor([i * (sb - 0.1) / nb + 0.1 for i in range(int(nb))], dtype=torch.float64)
    alphas = torch.tensor([i * (sa - 0.1) / na + 0.1 for i in range(int(na))], dtype=torch.float64)
    return betas, alphas


def grid_search(
    features: torch.Tensor,
    labels: torch.Tensor,
    class_embeddings: torch.Tensor,
    keys: torch.Tensor,
    values: Values,
    betas: "torch.Tensor | list[float]",
    alphas: "torch.Tensor | list[float]",
    memory_budget: int = MEMORY_BUDGET,
) -> SearchResult:
    """Score every (β, α) on ``(features [N, D], labels [N])`` and return the best.

    ``keys [K, D]``, ``values [K, C]`` (dense, or :class:`OneHot`), ``class_embeddings [C, D]``. Queries are
    streamed in chunks so the working set stays under ``memory_budget`` bytes. Ties go to the first maximum
    in β-major, α-minor order, as the official double loop.
    """
    betas = torch.as_tensor(betas, dtype=torch.float64)
    alphas = torch.as_tensor(alphas, dtype=torch.float64)
    if betas.numel() == 0 or alphas.numel() == 0:
        raise TipkitError("grid_search needs at least one beta and one alpha")
    labels = torch.as_tensor(labels, device=features.device)
    onehot = as_one_hot(values)
    vals = onehot.to(features.device) if onehot is not None else values
    n, (k, c) = features.shape[0], (keys.shape[0], class_embeddings.shape[0])
    correct = torch.zeros(len(betas), len(alphas), dtype=torch.long)
    a = alphas.to(device=features.device, dtype=features.dtype)
    step = _rows(k, c, len(alphas), memory_budget)
    for s in range(0, n, step):
        f = features[s:s + step]
        y = labels[s:s + len(f)]
        zs = clip_logits(f, class_embeddings)  # [n, C]
        distance = blas.matmul(f, keys.T).neg_().add_(1.0)  # 1 − A, [n, K], once per chunk
        scratch = torch.empty((len(f), 1, c), dtype=features.dtype, device=features.device)
        for i, weights in enumerate(exp_schedule(distance, betas.tolist())):
            cache = apply_values(weights, vals)  # [n, C]
            pred = line_argmax(zs, cache.unsqueeze(1), a, scratch=scratch).view(len(f), -1)  # [n, J]
            correct[i] += (pred == y.view(-1, 1)).sum(0).cpu()
        del distance
    grid = correct.double() * 100.0 / n
    flat = int(torch.argmax(grid.flatten()))  # first maximum, beta-major
    i, j = divmod(flat, len(alphas))
    return SearchResult(best_alpha=float(alphas[j]), best_beta=float(betas[i]), best_acc=float(grid[i, j]),
                        grid=grid, betas=betas, alphas=alphas)


def _rows(k: int, c: int, j: int, budget: int) -> int:
    """Queries per chunk: affinity, weights and the β-step factor (``3K`` floats), logits and grid state."""
    return max(1, budget // (4 * (3 * k + 6 * c) + 8 * j))
