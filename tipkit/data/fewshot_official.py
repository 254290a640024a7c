"""The official few-shot sampler (CoOp / Dassl ``generate_fewshot_dataset``, copied by Tip-Adapter).

The official code seeds Python's ``random`` module once (Tip-Adapter ``main.py``: ``random.seed(1)``;
CoOp: ``set_random_seed(cfg.SEED)``) and then, for the train list of a split file, groups the items
by label in a dict (classes in order of first appearance) and per class draws
``random.sample(items, K)``, or ``random.choices(items, k=K)`` (with replacement) only when the class
holds fewer than K items. CoOp then reduces val with the same generator to ``min(K, 4)`` per class;
Tip-Adapter keeps the full val split (and its ImageNet loader samples ``random.sample`` per class in
label order, which this function reproduces because ImageNet's list is ordered by label).

Here a private ``random.Random(seed)`` replaces the global generator; it produces the same draws as
``random.seed(seed)`` followed by the module-level functions (same Mersenne Twister, same
algorithms), without touching the caller's global random state. Draws are reproduced when the
``labels`` list is in the official order (the split file's order; sorted folders for ImageNet).
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np

from tipkit.errors import TipkitError


def _check_shots(shots: int) -> int:
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots <= 0:
        raise TipkitError(f"shots must be a positive integer, got {shots!r}")
    return int(shots)


def _groups(labels: "np.ndarray | Sequence[int]") -> dict[int, list[int]]:
    """Indices per label, classes in order of first appearance (Dassl ``split_dataset_by_label``)."""
    out: dict[int, list[int]] = {}
    for i, y in enumerate(np.asarray(labels).reshape(-1).tolist()):
        out.setdefault(int(y), []).append(i)
    return out


def sample_few_shot_official(labels: "np.ndarray | Sequence[int]", shots: int, seed: "int | None" = None,
                             *, rng: "random.Random | None" = None, repeat: bool = True) -> np.ndarray:
    """Indices of the official K-shot subset of ``labels [N]``.

    Returns ``[C·K]`` int64 indices (fewer when ``repeat=False`` and a class is short), grouped by class
    in order of first appearance, each group in draw order — the order of the official ``train_x`` list.
    Pass ``seed`` (a fresh generator, as after ``random.seed(seed)``) or ``rng`` (continue an existing
    generator, as CoOp does for val after train). A class with fewer than ``shots`` images is drawn
    with replacement (``random.choices``) when ``repeat`` is True, else kept whole — as upstream.
    """
    k = _check_shots(shots)
    if (seed is None) == (rng is None):
        raise TipkitError("sample_few_shot_official needs exactly one of seed= or rng=")
    gen = rng if rng is not None else random.Random(seed)
    out: list[int] = []
    for items in _groups(labels).values():
        if len(items) >= k:
            out.extend(gen.sample(items, k))
        elif repeat:
            out.extend(gen.choices(items, k=k))
        else:
            out.extend(items)
    return np.asarray(out, dtype=np.int64)


def reduce_val_official(labels: "np.ndarray | Sequence[int]", shots: int, seed: "int | None" = None,
                        *, rng: "random.Random | None" = None) -> np.ndarray:
    """CoOp's few-shot val: ``min(shots, 4)`` per class of ``labels [N]``; returns ``[C·min(K, 4)]`` indices.

    (Tip-Adapter itself searches α/β on the full val split; this is the CoOp protocol.)
    """
    return sample_few_shot_official(labels, min(_check_shots(shots), 4), seed, rng=rng)


def coop_few_shot(train_labels: "np.ndarray | Sequence[int]", val_labels: "np.ndarray | Sequence[int]",
                  shots: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """CoOp's whole draw for one seed: K-shot train, then val reduced to ``min(K, 4)``, one generator.

    Returns ``(train_idx [C·K], val_idx [C·min(K, 4)])``, as CoOp's dataset classes build them right
    after ``set_random_seed(seed)``.
    """
    gen = random.Random(seed)
    train = sample_few_shot_official(train_labels, shots, rng=gen)
    val = reduce_val_official(val_labels, shots, rng=gen)
    return train, val
