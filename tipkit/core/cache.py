"""Stage 2 of the paper: the training-free cache model (keys and values).

Keys are the few-shot images' visual features averaged over ``A`` augmented
views and L2-normalised; values are the one-hot labels (as the official code).
"""

from __future__ import annotations

import torch

from tipkit.errors import TipkitError


def l2_normalize(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    return x / x.norm(dim=dim, keepdim=True).clamp_min(1e-12)


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[K]`` integer labels -> ``[K, C]`` float one-hot matrix."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise TipkitError(f"labels must lie in [0, {num_classes - 1}], got range "
                          f"[{int(labels.min())}, {int(labels.max())}]")
    return torch.nn.functional.one_hot(labels, num_classes).float()


def build_cache(view_features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Build the cache model.

    Args:
        view_features: ``[A, K, D]`` features of the K few-shot images under A augmented views
            (``[K, D]`` is accepted as a single view).
        labels: ``[K]`` class indices.
        num_classes: C.

    Returns:
        ``(keys [K, D], values [K, C])``: keys are the view-mean, L2-normalised; values one-hot.
    """
    if view_features.dim() == 2:
        view_features = view_features.unsqueeze(0)
    if view_features.dim() != 3:
        raise TipkitError(f"view_features must be [A, K, D], got shape {tuple(view_features.shape)}")
    if view_features.shape[1] != len(labels):
        raise TipkitError(f"{view_features.shape[1]} cached images but {len(labels)} labels")
    keys = l2_normalize(view_features.float().mean(dim=0))
    return keys, one_hot(labels, num_classes).to(keys.device)
