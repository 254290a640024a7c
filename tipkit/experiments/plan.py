"""What the paper profile needs on disk, computed from the expected split sizes and the backbone's width."""

from __future__ import annotations

import pandas as pd

from tipkit.data.check import EXPECTED


def feature_bytes(images: int, dim: int, dtype_bytes: int = 4) -> int:
    """Bytes of a feature store of ``images`` rows of ``dim`` float32 values."""
    return images * dim * dtype_bytes


def paper_plan(backbone: str = "RN50", shots: tuple[int, ...] = (1, 2, 4, 8, 16), seeds: tuple[int, ...] = (1, 2, 3),
               views: int = 10) -> pd.DataFrame:
    """Per paper dataset: classes, split sizes, runs in the grid, and the feature cache it fills (MiB).

    The cache holds the val and test features once and, per augmented view, every image any (shots, seed)
    draws; the upper bound ``max(shots) × classes × len(seeds)`` is used for the few-shot images.
    """
    import open_clip

    dim = open_clip.get_model_config(backbone)["embed_dim"]
    rows = []
    for name, exp in EXPECTED.items():
        sizes = exp["sizes"]
        few = min(sizes.get("train", 0), max(shots) * exp["classes"] * len(seeds)) if "train" in sizes else 0
        stored = sizes.get("val", 0) + sizes.get("test", 0) + few * views
        rows.append({"dataset": name, "classes": exp["classes"], **{f"{k} images": v for k, v in sizes.items()},
                     "runs": len(shots) * len(seeds) if "train" in sizes else 0,
                     "feature cache (MiB)": round(feature_bytes(stored, dim) / 2**20, 1)})
    df = pd.DataFrame(rows).fillna(0)
    return df.astype({c: int for c in df.columns if c.endswith(" images")})
