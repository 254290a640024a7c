"""A tiny generated dataset (4 classes of noisy patterns, 28x28) for smoke tests; it needs no files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tipkit.data.fashion_mnist import array_split
from tipkit.data.registry import Dataset, register

SYNTH_CLASSES = ["horizontal stripes", "vertical stripes", "checkerboard", "blob"]


def synthetic_images(labels: np.ndarray, seed: int, size: int = 28) -> np.ndarray:
    """Noisy class-specific patterns ``[N, size, size]`` uint8, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = [(yy // 4) % 2, (xx // 4) % 2, ((yy // 4) + (xx // 4)) % 2,
            ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2)]
    out = np.stack([base[int(c)] * 200.0 for c in labels]) + rng.normal(0, 40, (len(labels), size, size))
    return np.clip(out, 0, 255).astype(np.uint8)


@register("synthetic")
def synthetic(root: "str | Path | None" = None, download: bool = True) -> Dataset:
    """A tiny generated dataset (4 classes, 28×28) for smoke tests; needs no files."""
    sizes = {"train": 20, "val": 5, "test": 10}
    splits = {}
    for s, (name, n) in enumerate(sizes.items()):
        labels = np.repeat(np.arange(len(SYNTH_CLASSES)), n)
        splits[name] = array_split(name, synthetic_images(labels, seed=s), labels, name, np.arange(len(labels)))
    return Dataset("synthetic", list(SYNTH_CLASSES), ["a photo of {}."], splits)
