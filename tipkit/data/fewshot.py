"""Few-shot sampling: tipkit's per-class draw, the run config's choice of sampler, val subsets, manifests."""

from __future__ import annotations

import numpy as np

from tipkit.data.fewshot_official import reduce_val_official, sample_few_shot_official
from tipkit.data.registry import Split
from tipkit.errors import TipkitError


def few_shot_for(cfg: object, train: Split, shots: "int | None" = None,
                 names: "list[str] | None" = None) -> np.ndarray:
    """The few-shot draw of a run config: tipkit's sampler or the official one (``cfg.sampler``); ``names``
    (the class names) make errors name the class."""
    k, seed = shots or cfg.shots, cfg.seed  # type: ignore[attr-defined]
    if getattr(cfg, "sampler", "tipkit") == "official":
        return sample_few_shot_official(train.labels, k, seed)
    return sample_few_shot(train.labels, k, seed, names=names)


def _cls(c: int, names: "list[str] | None") -> str:
    return f"class {names[c]!r}" if names is not None and 0 <= c < len(names) else f"class {c}"


def sample_few_shot(labels: np.ndarray, shots: int, seed: int, names: "list[str] | None" = None) -> np.ndarray:
    """Pick ``shots`` indices per class from ``labels [N]``, deterministically in ``seed``.

    Returns indices ``[C·shots]`` grouped by class (class 0 first). Sampling is
    without replacement; a class with fewer than ``shots`` images is an error.
    """
    if isinstance(shots, bool) or int(shots) != shots or shots <= 0:
        raise TipkitError(f"shots must be a positive integer, got {shots!r}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels):
        pool = np.flatnonzero(labels == c)
        if len(pool) < shots:
            raise TipkitError(f"shots={shots} is more than {_cls(int(c), names)} holds ({len(pool)} images); "
                              f"use shots <= {min(np.bincount(labels)[np.unique(labels)])}")
        out.append(rng.choice(pool, size=int(shots), replace=False))
    return np.concatenate(out)


def val_for(cfg: object, val: Split, names: "list[str] | None" = None) -> np.ndarray:
    """The validation images a run may choose on: all of them under the ``paper`` protocol (Tip-Adapter's
    code), ``min(K, 4)`` per class under ``clean`` (CoOp's), drawn with the run's sampler and seed."""
    if getattr(cfg, "protocol", "clean") == "paper":
        return np.arange(len(val))
    k, seed = min(int(cfg.shots), 4), cfg.seed  # type: ignore[attr-defined]
    if getattr(cfg, "sampler", "tipkit") == "official":
        return reduce_val_official(val.labels, k, seed)
    counts = np.bincount(val.labels)
    short = np.flatnonzero((counts > 0) & (counts < k))
    if len(short):
        c = int(short[0])
        raise TipkitError(f"the validation split holds {counts[c]} image(s) of {_cls(c, names)} but the clean protocol "
                          f"chooses on min(shots, 4) = {k} per class; use shots <= {int(counts[counts > 0].min())}, "
                          "protocol paper, or more validation images")
    return np.sort(sample_few_shot(val.labels, k, seed + 7919))  # its own stream: not the train draw's


def manifest(split: Split, indices: np.ndarray) -> list[dict]:
    """The chosen images as ``[{"index", "id", "label"}]``, saved with every run."""
    return [{"index": int(i), "id": split.ids[int(i)], "label": int(split.labels[int(i)])} for i in indices]
