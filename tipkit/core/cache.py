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


class OneHot:
    """One-hot cache values ``V [K, C]`` kept as their labels, so that ``E V`` is a per-class sum of E's columns.

    The paper's values are one-hot, so the cache term ``exp(−β(1 − f Kᵀ)) V`` never needs the dense
    ``[N, K] × [K, C]`` product: when the keys are grouped by class with equal counts (labels
    ``0…0 1…1 …``, as :func:`tipkit.data.sample_few_shot` draws them) it is a reshape and a sum over each
    class's ``s`` keys, otherwise an index-add. Both are differentiable (Tip-Adapter-F trains through them).
    ``scale [K]`` (optional) weights each entry: ``V = diag(scale) one_hot(labels)`` (APE's refined values,
    APE-T's per-image value weights).
    """

    def __init__(self, labels: torch.Tensor, num_classes: int, scale: "torch.Tensor | None" = None) -> None:
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.num_classes = int(num_classes)
        self.scale = scale
        k = self.labels.numel()
        s = k // max(1, self.num_classes)
        grouped = s > 0 and s * self.num_classes == k and bool(
            torch.equal(self.labels.cpu(), torch.arange(self.num_classes).repeat_interleave(s)))
        self.group: "int | None" = s if grouped else None  # keys per class when grouped, else None

    def to(self, device: "str | torch.device") -> "OneHot":
        out = OneHot.__new__(OneHot)
        out.labels, out.num_classes, out.group = self.labels.to(device), self.num_classes, self.group
        out.scale = None if self.scale is None else self.scale.to(device)
        return out

    def with_scale(self, scale: "torch.Tensor | None") -> "OneHot":
        """The same labels with per-entry weights ``scale [K]``."""
        out = self.to(self.labels.device)
        out.scale = scale
        return out

    def dense(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The ``[K, C]`` matrix."""
        v = torch.nn.functional.one_hot(self.labels, self.num_classes).to(dtype)
        return v if self.scale is None else v * self.scale.reshape(-1, 1).to(dtype)

    def matmul(self, weights: torch.Tensor) -> torch.Tensor:
        """``weights V``: ``[N, K] -> [N, C]``."""
        if self.scale is not None:
            weights = weights * self.scale.reshape(1, -1)
        n = weights.shape[0]
        if self.group is not None:
            return weights.reshape(n, self.num_classes, self.group).sum(-1)
        out = torch.zeros(n, self.num_classes, dtype=weights.dtype, device=weights.device)
        return out.index_add(1, self.labels.to(weights.device), weights)

    def matmul_scales(self, weights: torch.Tensor, scales: torch.Tensor, out: "torch.Tensor | None" = None) -> torch.Tensor:
        """``weights diag(scales[g]) one_hot`` for every row g of ``scales [G, K]``: ``[N, K] -> [G, N, C]``
        (one batched product over classes when the keys are grouped, returned as a view of its class-major
        ``[C, N, G]`` result, written into ``out`` when given; ``self.scale`` is not used)."""
        n, g = weights.shape[0], scales.shape[0]
        if self.group is None:
            return torch.stack([self.with_scale(sc).matmul(weights) for sc in scales])
        c, s = self.num_classes, self.group
        e = weights.reshape(n, c, s).transpose(0, 1)  # [C, N, s]
        w = scales.to(weights.dtype).reshape(g, c, s).permute(1, 2, 0)  # [C, s, G]
        return torch.bmm(e, w, out=out).permute(2, 1, 0)  # [G, N, C]


def as_one_hot(values: "torch.Tensor | OneHot") -> "OneHot | None":
    """``values`` as :class:`OneHot` when it is exactly one-hot (0/1 with one 1 per row), else None."""
    if isinstance(values, OneHot):
        return values
    if values.dim() != 2 or values.shape[0] == 0:
        return None
    ones = values == 1
    if not bool(((values == 0) | ones).all()) or not bool((ones.sum(1) == 1).all()):
        return None
    return OneHot(values.argmax(1).cpu(), values.shape[1])
