"""The chapter "Tip-Adapter on your own images": test accuracy by shots from run records, and a picture
grid of new images with their top-k predictions."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from tipkit.labels import METHOD_LABELS


def accuracy_by_shots(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Test top-1 accuracy (%) of run records: one row per shot count, one column per method."""
    rows = [{"shots": r["config"]["shots"], "method": METHOD_LABELS.get(m, m), "top1": acc}
            for r in records for m, acc in r["metrics"]["test"].items()]
    if not rows:
        raise ValueError("no run records to tabulate")
    order = list(dict.fromkeys(row["method"] for row in rows))
    table = pd.DataFrame(rows).pivot_table(index="shots", columns="method", values="top1", aggfunc="mean")
    return table[order].round(2)


def prediction_grid(images: Sequence[Any], top: list[list[tuple[str, float]]],
                    truth: "Sequence[str | None] | None" = None, cols: int = 5) -> Any:
    """Each image (PIL) with its top-k ``(class, probability)`` below it; with ``truth``, the true class
    as the panel's title and the top-1 line green when right, red when wrong."""
    import matplotlib.pyplot as plt

    if len(images) != len(top) or (truth is not None and len(truth) != len(images)):
        raise ValueError(f"{len(images)} images, {len(top)} predictions"
                         + ("" if truth is None else f", {len(truth)} true labels"))
    n = len(images)
    cols = max(1, min(cols, n))
    rows = int(np.ceil(n / cols))
    k = max((len(t) for t in top), default=1)
    fig, axes = plt.subplots(2 * rows, cols, figsize=(2.0 * cols, (2.0 + 0.25 * k) * rows), squeeze=False,
                             gridspec_kw={"height_ratios": [1.0, 0.13 * k] * rows})
    for ax in axes.flat:
        ax.axis("off")
    for i, (im, t) in enumerate(zip(images, top)):
        pic, text = axes[2 * (i // cols)][i % cols], axes[2 * (i // cols) + 1][i % cols]
        pic.imshow(np.asarray(im.convert("L")), cmap="gray", interpolation="nearest")
        true = None if truth is None else truth[i]
        if true is not None:
            pic.set_title(f"true: {true}", fontsize=9)
        for r, (name, p) in enumerate(t):
            colour = "black" if true is None or r else ("tab:green" if name == true else "tab:red")
            text.text(0.5, 1.0 - (r + 0.5) / k, f"{r + 1}. {name} {p:.2f}", transform=text.transAxes, ha="center",
                      va="center", fontsize=8, color=colour, weight="bold" if r == 0 else "normal")
    fig.tight_layout(h_pad=0.2)
    return fig
