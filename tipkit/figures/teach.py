"""Figures for the classroom walkthrough: the few-shot images, the cache, one query's affinities,
and how α and β move a prediction. Every function returns a matplotlib Figure (or a DataFrame).

The walkthrough's exercise checks (``check_*``, :mod:`tipkit.figures.checks`) and the α/β explorer
(``alpha_beta_explorer``, :mod:`tipkit.figures.explorer`) are reached through this module too."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from tipkit.core.fusion import affinity_to_cache, clip_logits
from tipkit.data import Split


def few_shot_grid(split: Split, indices: np.ndarray, classnames: list[str], per_class: int = 4) -> Any:
    """Grid of the few-shot images: one row per class, up to ``per_class`` images each."""
    import matplotlib.pyplot as plt

    labels = split.labels[indices]
    classes = sorted(set(labels.tolist()))
    cols = min(per_class, max(int((labels == c).sum()) for c in classes))
    fig, axes = plt.subplots(len(classes), cols, figsize=(1.1 * cols + 1.6, 1.1 * len(classes)), squeeze=False)
    for r, c in enumerate(classes):
        chosen = indices[labels == c][:cols]
        for k in range(cols):
            ax = axes[r][k]
            ax.axis("off")
            if k < len(chosen):
                ax.imshow(np.asarray(split.image(int(chosen[k]))), cmap="gray")
        axes[r][0].text(-0.15, 0.5, classnames[c], transform=axes[r][0].transAxes, ha="right", va="center")
    fig.tight_layout()
    return fig


def cache_matrices(keys: torch.Tensor, values: torch.Tensor, classnames: list[str]) -> Any:
    """The cache as its two weight matrices: keys ``[K, D]`` (first layer) and values ``[K, C]`` (second)."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [3, 1]})
    im = a.imshow(keys.numpy(), aspect="auto", cmap="RdBu_r")
    a.set(title="keys $F_{train}$ (rows: cached images)", xlabel="feature dimension", ylabel="cached image")
    fig.colorbar(im, ax=a, fraction=0.04)
    b.imshow(values.numpy(), aspect="auto", cmap="Greys", interpolation="nearest")
    b.set(title="values $L_{train}$ (one-hot)", xlabel="class")
    b.set_xticks(range(len(classnames)), classnames, rotation=90, fontsize=7)
    b.set_yticks([])
    fig.tight_layout()
    return fig


def query_affinities(query: torch.Tensor, keys: torch.Tensor, labels: "torch.Tensor | np.ndarray", classnames: list[str],
                     betas: tuple[float, ...] = (1.0, 5.5, 20.0)) -> Any:
    """For one query ``[D]``: cosine affinity to each cached image, and the cache weights
    ``exp(−β(1 − cos))`` for a few β (sharper with larger β), coloured by the cached image's class."""
    import matplotlib.pyplot as plt

    cos = (keys @ query).numpy()
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    fig, axes = plt.subplots(1, 1 + len(betas), figsize=(3.2 * (1 + len(betas)), 3), sharey=False)
    colors = plt.get_cmap("tab10")(labels[order] % 10)
    axes[0].bar(range(len(cos)), cos[order], color=colors)
    axes[0].set(title="cosine $f F_{train}^T$", xlabel="cached image (grouped by class)")
    for ax, beta in zip(axes[1:], betas):
        ax.bar(range(len(cos)), np.exp(-beta * (1 - cos[order])), color=colors)
        ax.set(title=f"weights, β = {beta:g}", xlabel="cached image")
    fig.tight_layout()
    return fig


def alpha_beta_effect(query: torch.Tensor, class_embeddings: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                      classnames: list[str], alphas: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0),
                      betas: tuple[float, ...] = (1.0, 5.5)) -> pd.DataFrame:
    """Predicted class and its probability for one query ``[D]`` as α (and β) change; α = 0 is zero-shot."""
    q = query.unsqueeze(0)
    zs = clip_logits(q, class_embeddings)
    affinity = q @ keys.T
    rows = []
    for beta in betas:
        cache = affinity_to_cache(affinity, values, beta)
        for alpha in alphas:
            p = torch.softmax(zs + alpha * cache, dim=-1)[0]
            rows.append({"beta": beta, "alpha": alpha, "prediction": classnames[int(p.argmax())],
                         "probability": round(float(p.max()), 3)})
    return pd.DataFrame(rows)


def prediction_bars(query: torch.Tensor, class_embeddings: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                    classnames: list[str], alpha: float, beta: float) -> Any:
    """Class scores of one query: zero-shot part, α × cache part, and their sum."""
    import matplotlib.pyplot as plt

    q = query.unsqueeze(0)
    parts = {"zero-shot 100·fWᵀ": clip_logits(q, class_embeddings)[0],
             f"cache × α (α={alpha:g}, β={beta:g})": alpha * affinity_to_cache(q @ keys.T, values, beta)[0]}
    parts["sum (Tip-Adapter)"] = parts[list(parts)[0]] + parts[list(parts)[1]]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3), sharey=True)
    for ax, (name, v) in zip(axes, parts.items()):
        v = v.numpy()
        ax.barh(range(len(v)), v, color=["C3" if i == int(np.argmax(v)) else "C0" for i in range(len(v))])
        ax.set(title=name)
        ax.set_yticks(range(len(classnames)), classnames)
    axes[0].invert_yaxis()
    fig.tight_layout()
    return fig


def method_diagram() -> Any:
    """Tip-Adapter as a flow chart: the zero-shot branch and the cache branch (a two-layer network)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 3.6)
    ax.axis("off")
    boxes = {
        "img": (0.1, 1.45, "test image", "#eeeeee"), "enc": (1.55, 1.45, "visual\nencoder", "#cfe2f3"),
        "f": (3.0, 1.45, "feature f\n(L2-norm.)", "#ffffff"),
        "W": (4.55, 2.6, "100 · f Wᵀ\n(text classifier)", "#d9ead3"),
        "K": (4.55, 0.3, "f Kᵀ\n(keys: layer 1)", "#fce5cd"), "act": (6.1, 0.3, "exp(−β(1 − ·))\n(activation)", "#fce5cd"),
        "V": (7.65, 0.3, "· V\n(values: layer 2)", "#fce5cd"), "sum": (9.2, 1.45, "logits = zero-shot\n+ α · cache", "#f4cccc"),
    }
    w, h = 1.3, 0.75
    for x, y, text, color in boxes.values():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=color, ec="#444444"))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)

    def arrow(a: str, b: str) -> None:
        (xa, ya, *_), (xb, yb, *_) = boxes[a], boxes[b]
        ax.annotate("", xy=(xb, yb + h / 2), xytext=(xa + w, ya + h / 2),
                    arrowprops={"arrowstyle": "->", "color": "#444444", "lw": 1.3})

    for a, b in [("img", "enc"), ("enc", "f"), ("f", "W"), ("f", "K"), ("K", "act"), ("act", "V"), ("W", "sum"),
                 ("V", "sum")]:
        arrow(a, b)
    ax.text(6.1, 1.35, "cache model, built from the few-shot set without training\n"
            "(Tip-Adapter-F fine-tunes the keys K)", ha="center", fontsize=8.5, style="italic")
    ax.text(5.2, 3.5, "zero-shot CLIP branch", ha="center", fontsize=8.5, style="italic")
    fig.tight_layout()
    return fig


def instructive_query(features: torch.Tensor, labels: "torch.Tensor | np.ndarray", class_embeddings: torch.Tensor,
                      keys: torch.Tensor, values: torch.Tensor, alpha: float = 1.0, beta: float = 5.5) -> int:
    """Index of the first query ``features [N, D]`` that zero-shot gets wrong and Tip-Adapter right (else 0)."""
    from tipkit.core.fusion import tip_logits

    y = torch.as_tensor(np.asarray(labels))
    zs_ok = clip_logits(features, class_embeddings).argmax(-1) == y
    tip_ok = tip_logits(features, class_embeddings, keys, values, alpha, beta).argmax(-1) == y
    hits = torch.nonzero(~zs_ok & tip_ok).flatten()
    return int(hits[0]) if len(hits) else 0


from tipkit.figures.checks import (  # noqa: E402  (the exercise checks, public as tipkit.teach.check_*)
    ExerciseError,
    check_cache_logits,
    check_finetune_epoch,
    check_small_cache,
    check_tip_logits,
)
from tipkit.figures.explorer import alpha_beta_explorer, explorer_data, explorer_html  # noqa: E402
