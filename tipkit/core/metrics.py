"""Accuracy metrics (percent, as the paper reports them)."""

from __future__ import annotations

import torch


def accuracy(logits: torch.Tensor, labels: torch.Tensor, topk: int = 1) -> float:
    """Top-k accuracy in percent of ``logits [N, C]`` against ``labels [N]``."""
    labels = torch.as_tensor(labels, device=logits.device)
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    pred = logits.topk(topk, dim=-1).indices  # [N, k]
    return float((pred == labels[:, None]).any(dim=-1).double().mean() * 100.0)


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    """Top-1 accuracy (%) within each class; NaN for a class with no samples."""
    pred = logits.argmax(dim=-1).cpu()
    labels = torch.as_tensor(labels).cpu()
    out = []
    for c in range(num_classes):
        m = labels == c
        out.append(float((pred[m] == c).double().mean() * 100.0) if m.any() else float("nan"))
    return out
