"""Stage 3 of the paper: logit fusion (Tip-Adapter, Eq. 5-6).

    logits = 100 · f Wᵀ + α · exp(−β (1 − f Kᵀ)) V

All tensors are row-major: ``features`` is ``[N, D]`` (L2-normalised rows),
``class_embeddings`` (the text classifier W) is ``[C, D]``, cache ``keys`` are
``[K, D]`` and ``values`` ``[K, C]``.
"""

from __future__ import annotations

import torch

from tipkit.core import blas
from tipkit.core.cache import OneHot

Values = "torch.Tensor | OneHot"  # cache values: a dense [K, C] matrix, or one-hot values kept as labels
CLIP_SCALE = 100.0  # CLIP's learned temperature, fixed at 100 in the paper


def clip_logits(features: torch.Tensor, class_embeddings: torch.Tensor, scale: float = CLIP_SCALE) -> torch.Tensor:
    """Zero-shot logits ``scale · f Wᵀ``: ``[N, D] × [C, D] -> [N, C]``."""
    return blas.matmul(scale * features, class_embeddings.T)


def apply_values(weights: torch.Tensor, values: Values) -> torch.Tensor:
    """``weights V``: ``[N, K] -> [N, C]``; a per-class sum when ``values`` is :class:`OneHot`."""
    return values.matmul(weights) if isinstance(values, OneHot) else weights @ values


def cache_weights(affinity: torch.Tensor, beta: float, inplace: bool = False) -> torch.Tensor:
    """``exp(−β (1 − A))``: ``[N, K] -> [N, K]``. Without autograd it takes one buffer (``inplace``: none,
    overwriting ``affinity``) instead of three temporaries, and three passes: ``(A − 1)·β`` is ``(1 − A)·(−β)``
    bit for bit (rounding to nearest is symmetric in sign), so the results are those of the formula as written."""
    if torch.is_grad_enabled() and affinity.requires_grad:
        return torch.exp(-beta * (1.0 - affinity))
    out = affinity.sub_(1.0) if inplace else affinity.sub(1.0)
    return out.mul_(beta).exp_()


def affinity_to_cache(affinity: torch.Tensor, values: Values, beta: float) -> torch.Tensor:
    """``exp(−β (1 − A)) V`` for a precomputed affinity ``A = f Kᵀ``: ``[N, K] × [K, C] -> [N, C]``."""
    return apply_values(cache_weights(affinity, beta), values)


def cache_logits(features: torch.Tensor, keys: torch.Tensor, values: Values, beta: float) -> torch.Tensor:
    """Cache-model logits ``exp(−β (1 − f Kᵀ)) V``: ``[N, D], [K, D], [K, C] -> [N, C]``."""
    return apply_values(cache_weights(blas.matmul(features, keys.T), beta, inplace=True), values)


def tip_logits(
    features: torch.Tensor,
    class_embeddings: torch.Tensor,
    keys: torch.Tensor,
    values: Values,
    alpha: float,
    beta: float,
) -> torch.Tensor:
    """Tip-Adapter logits ``clip_logits + α · cache_logits``: ``-> [N, C]``.

    ``alpha = 0`` gives exactly the zero-shot logits.
    """
    zs = clip_logits(features, class_embeddings)
    if alpha == 0:
        return zs
    return zs + alpha * cache_logits(features, keys, values, beta)
