"""Stage 4 of the paper: the α/β hyperparameter search.

The official code loops over every (β, α) pair and recomputes the affinity
matmul each time. Here the affinity ``A = f Kᵀ`` is computed once, each β costs
one ``exp`` pass plus one ``[N, K] × [K, C]`` product, and every α for that β is
scored in one batched argmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tipkit.core.fusion import affinity_to_cache, clip_logits
from tipkit.errors import TipkitError


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


def _alpha_chunk(n: int, c: int, budget: int = 2**26) -> int:
    """How many α to score at once so that the ``[a, N, C]`` logits stay under ``budget`` floats."""
    return max(1, budget // max(1, n * c))


def grid_search(
    features: torch.Tensor,
    labels: torch.Tensor,
    class_embeddings: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    betas: "torch.Tensor | list[float]",
    alphas: "torch.Tensor | list[float]",
) -> SearchResult:
    """Score every (β, α) on ``(features [N, D], labels [N])`` and return the best.

    Ties go to the first maximum in β-major, α-minor order, as the official double loop.
    """
    betas = torch.as_tensor(betas, dtype=torch.float64)
    alphas = torch.as_tensor(alphas, dtype=torch.float64)
    if betas.numel() == 0 or alphas.numel() == 0:
        raise TipkitError("grid_search needs at least one beta and one alpha")
    labels = torch.as_tensor(labels, device=features.device)
    zs = clip_logits(features, class_embeddings)  # [N, C]
    affinity = features @ keys.T  # [N, K], computed once
    n, c = zs.shape
    step = _alpha_chunk(n, c)
    grid = torch.empty(len(betas), len(alphas), dtype=torch.float64)
    a = alphas.to(device=zs.device, dtype=zs.dtype)
    for i, beta in enumerate(betas.tolist()):
        cache = affinity_to_cache(affinity, values, beta)  # [N, C], one exp pass per beta
        for s in range(0, len(a), step):
            logits = zs.unsqueeze(0) + a[s:s + step, None, None] * cache.unsqueeze(0)  # [a, N, C]
            correct = (logits.argmax(dim=-1) == labels.unsqueeze(0)).sum(dim=-1)
            grid[i, s:s + step] = correct.double().cpu() * 100.0 / n
    flat = int(torch.argmax(grid.flatten()))  # first maximum, beta-major
    i, j = divmod(flat, len(alphas))
    return SearchResult(best_alpha=float(alphas[j]), best_beta=float(betas[i]), best_acc=float(grid[i, j]),
                        grid=grid, betas=betas, alphas=alphas)
