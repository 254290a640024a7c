"""The paper's ablations as functions of cached features (α, β, cache size, shots, views, prompts, Tip-F).

Every function takes an :class:`AblationData` (tensors from :mod:`tipkit.models.features`) and returns a tidy
``pandas.DataFrame``, one row per setting: the setting columns, ``val_acc`` (validation top-1 %) and
``acc`` (test top-1 %). Test accuracy is only **reported**; every choice made inside an ablation (α, β
and Tip-Adapter-F's epoch) is made on the validation features. Affinities are computed once per cache
(:func:`tipkit.core.search.grid_search`), never per grid point. Paper settings are module constants.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Mapping, Sequence

import pandas as pd
import torch

from tipkit.core.cache import build_cache, l2_normalize, one_hot
from tipkit.core.finetune import TRAINABLE, finetune
from tipkit.core.fusion import clip_logits, tip_logits
from tipkit.core.metrics import accuracy
from tipkit.core.search import grid_search, paper_grid
from tipkit.data.classnames import IMAGENET_TEMPLATES
from tipkit.errors import TipkitError, choose
from tipkit.studies.ablation_data import AblationData, TipF, load_data  # noqa: F401 (part of this module's interface)

log = logging.getLogger(__name__)
Tensor = torch.Tensor
Grid = tuple[Tensor, Tensor]  # (betas, alphas), as tipkit.core.search.paper_grid returns

PAPER_ALPHAS, PAPER_BETA = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0), 5.5  # residual-ratio ablation, at fixed β
PAPER_BETAS, PAPER_ALPHA = (1.5, 3.5, 5.5, 7.5, 9.5, 11.5), 1.0  # sharpness ablation, at fixed α
PAPER_GROUPS = (0, 1, 2, 4, 8, 16)  # cache-size ablation: keys per class (0 = zero-shot, no cache)
PAPER_MORE_SHOTS = (16, 32, 64, 128)  # shots per class, cache kept at 16 entries per class
PAPER_PARTS = ("none", "keys", "values", "both")  # what Tip-Adapter-F fine-tunes ("none" = Tip-Adapter)
PAPER_EPOCHS = (1, 5, 10, 20, 50)
ENSEMBLE_TEMPLATES = tuple(IMAGENET_TEMPLATES)  # the paper's 7-template ensemble (ImageNet)


# --------------------------------------------------------------------------- shared steps
def _zero_shot(d: AblationData) -> dict[str, float]:
    """Zero-shot CLIP (α = 0, no cache): val and test accuracy."""
    w = d.class_embeddings
    return {"alpha": 0.0, "beta": math.nan, "val_acc": accuracy(clip_logits(d.val_features, w), d.val_labels),
            "acc": accuracy(clip_logits(d.test_features, w), d.test_labels)}


def _tip(d: AblationData, keys: Tensor, values: Tensor, grid: "Grid | None") -> dict[str, float]:
    """α, β searched on val for cache ``(keys [K', D], values [K', C])``; test accuracy at that choice."""
    betas, alphas = grid if grid is not None else paper_grid()
    s = grid_search(d.val_features, d.val_labels, d.class_embeddings, keys, values, betas, alphas)
    acc = accuracy(tip_logits(d.test_features, d.class_embeddings, keys, values, s.best_alpha, s.best_beta),
                   d.test_labels)
    return {"alpha": s.best_alpha, "beta": s.best_beta, "val_acc": s.best_acc, "acc": acc}


def _tip_f(d: AblationData, keys: Tensor, values: Tensor, grid: "Grid | None", tf: TipF,
           device: "str | torch.device", train: str = "keys") -> dict[str, float]:
    """Tip-F trained on ``d.views``/``d.labels`` (epoch kept on val), then α, β searched on val."""
    t0 = time.perf_counter()
    r = finetune(d.views, d.labels, d.val_features, d.val_labels, d.class_embeddings, keys, values, tf.alpha,
                 tf.beta, epochs=tf.epochs, lr=tf.lr, batch_size=tf.batch_size, seed=tf.seed, device=device,
                 train=train)
    train_s = time.perf_counter() - t0
    row = _tip(d, r.keys.to(keys.device), r.values.to(keys.device), grid)
    return {**row, "best_epoch": r.best_epoch, "train_s": train_s}


def _grid_frame(d: AblationData, betas: Sequence[float], alphas: Sequence[float]) -> pd.DataFrame:
    """Long frame of val and test accuracy on the full ``betas × alphas`` grid (beta-major)."""
    keys, values = d.cache()
    val = grid_search(d.val_features, d.val_labels, d.class_embeddings, keys, values, betas, alphas)
    test = grid_search(d.test_features, d.test_labels, d.class_embeddings, keys, values, betas, alphas)
    b, a = torch.meshgrid(val.betas, val.alphas, indexing="ij")
    return pd.DataFrame({"beta": b.flatten().numpy(), "alpha": a.flatten().numpy(),
                         "val_acc": val.grid.flatten().numpy(), "acc": test.grid.flatten().numpy()})


# --------------------------------------------------------------------------- α, β
def alpha_sweep(d: AblationData, alphas: Sequence[float] = PAPER_ALPHAS, beta: float = PAPER_BETA,
                device: "str | torch.device" = "cpu") -> pd.DataFrame:
    """Tip-Adapter accuracy vs the residual ratio α at fixed β (nothing is chosen; α = 0 is zero-shot).

    Returns columns ``alpha, beta, val_acc, acc``, one row per α.
    """
    return _grid_frame(d.to(device), [beta], list(alphas))[["alpha", "beta", "val_acc", "acc"]]


def beta_sweep(d: AblationData, betas: Sequence[float] = PAPER_BETAS, alpha: float = PAPER_ALPHA,
               device: "str | torch.device" = "cpu") -> pd.DataFrame:
    """Tip-Adapter accuracy vs the sharpness β at fixed α (nothing is chosen).

    Returns columns ``beta, alpha, val_acc, acc``, one row per β.
    """
    return _grid_frame(d.to(device), list(betas), [alpha])


def heatmap(d: AblationData, grid: "Grid | None" = None, device: "str | torch.device" = "cpu") -> pd.DataFrame:
    """Accuracy on the whole α×β search grid (default :func:`tipkit.core.search.paper_grid`), long format.

    Returns columns ``beta, alpha, val_acc, acc, val_best`` (one row per grid cell, beta-major); ``val_best``
    marks the cell the validation search picks (first maximum, as :func:`tipkit.core.search.grid_search`).
    """
    betas, alphas = grid if grid is not None else paper_grid()
    df = _grid_frame(d.to(device), betas, alphas)
    df["val_best"] = False
    df.loc[int(df["val_acc"].to_numpy().argmax()), "val_best"] = True
    return df


# --------------------------------------------------------------------------- cache size and shots
def group_keys(keys: Tensor, labels: Tensor, groups: int) -> tuple[Tensor, Tensor]:
    """Average each class's cache entries into G = ``groups`` keys.

    ``keys [K, D]`` (unit rows) of class c (``labels [K]``), in cache order, are split into G consecutive
    groups of n_c / G (G must divide n_c); a group's key is the L2-normalised mean of its members.
    Returns ``(keys [C'·G, D], labels [C'·G])`` for the C' classes present, class-major, group-minor;
    with one entry per group the keys come back unchanged (no renormalisation).
    """
    labels = torch.as_tensor(labels, device=keys.device)
    if isinstance(groups, bool) or int(groups) != groups or groups < 1:
        raise TipkitError(f"groups must be a positive integer, got {groups!r}")
    out_k, out_y = [], []
    for c in torch.unique(labels).tolist():
        k = keys[labels == c]
        if len(k) % groups:
            raise TipkitError(f"groups={groups} does not divide class {c}'s {len(k)} cache entries")
        size = len(k) // groups
        out_k.append(k if size == 1 else l2_normalize(k.reshape(groups, size, -1).mean(dim=1)))
        out_y.append(torch.full((groups,), c, dtype=torch.long, device=keys.device))
    return torch.cat(out_k), torch.cat(out_y)


def cache_size(d: AblationData, groups: Sequence[int] = PAPER_GROUPS, grid: "Grid | None" = None,
               device: "str | torch.device" = "cpu") -> pd.DataFrame:
    """The paper's cache-size study: each class's K shots averaged into G keys (:func:`group_keys`).

    G = 0 is zero-shot CLIP (no cache); G = K is the full Tip-Adapter cache. α, β are searched on val
    per G. Returns columns ``groups, cache_entries, alpha, beta, val_acc, acc``.
    """
    d, rows = d.to(device), []
    keys, _ = d.cache()
    for g in groups:
        if g == 0:
            rows.append({"groups": 0, "cache_entries": 0, **_zero_shot(d)})
            continue
        k, y = group_keys(keys, d.labels, g)
        rows.append({"groups": g, "cache_entries": len(k), **_tip(d, k, one_hot(y, d.num_classes).to(device), grid)})
        log.info("cache size G=%d: test %.2f%%", g, rows[-1]["acc"])
    return pd.DataFrame(rows)


def take_shots(d: AblationData, shots: int) -> AblationData:
    """The first ``shots`` few-shot images of every class (cache order), as a smaller AblationData."""
    idx = []
    for c in torch.unique(d.labels).tolist():
        members = torch.nonzero(d.labels == c).flatten()
        if shots < 1 or shots > len(members):
            raise TipkitError(f"shots={shots} but class {c} has {len(members)} few-shot images")
        idx.append(members[:shots])
    i = torch.cat(idx)
    return dataclasses.replace(d, views=d.views[:, i], labels=d.labels[i])


def more_shots(d: AblationData, shots: Sequence[int] = PAPER_MORE_SHOTS, cache_per_class: int = 16,
               grid: "Grid | None" = None, tip_f: "TipF | None" = TipF(),
               device: "str | torch.device" = "cpu") -> pd.DataFrame:
    """More shots, cache kept at ``cache_per_class`` entries per class (the paper's 16/32/64/128 study).

    For S shots per class (the first S of ``d``, :func:`take_shots`), groups of S / cache_per_class shots
    are averaged into one key (:func:`group_keys`). Tip-Adapter-F (unless ``tip_f`` is None) trains on
    all S shots' views with that grouped cache. α, β and Tip-F's epoch are chosen on val.
    Returns columns ``shots, cache_entries, method, alpha, beta, val_acc, acc, best_epoch, train_s``.
    """
    d, rows = d.to(device), []
    subsets = [take_shots(d, s) for s in shots]  # every setting is checked before any training
    caches = [group_keys(ds.cache()[0], ds.labels, cache_per_class) for ds in subsets]
    for s, ds, (keys, y) in zip(shots, subsets, caches):
        values = one_hot(y, ds.num_classes).to(device)
        base = {"shots": s, "cache_entries": len(keys)}
        rows.append({**base, "method": "tip_adapter", **_tip(ds, keys, values, grid)})
        if tip_f is not None:
            rows.append({**base, "method": "tip_adapter_f", **_tip_f(ds, keys, values, grid, tip_f, device)})
        log.info("%d shots: %s", s, ", ".join(f"{r['method']} {r['acc']:.2f}%" for r in rows if r["shots"] == s))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- views, prompts, Tip-F
def augment_views(d: AblationData, views: "Sequence[int] | None" = None, grid: "Grid | None" = None,
                  device: "str | torch.device" = "cpu") -> pd.DataFrame:
    """Keys built from the first v of the A augmented views (default v = 1..A); α, β searched on val per v.

    Returns columns ``views, alpha, beta, val_acc, acc``.
    """
    d, a = d.to(device), d.views.shape[0]
    views = list(range(1, a + 1) if views is None else views)
    for v in views:
        if not 1 <= v <= a:
            raise TipkitError(f"views={v} is outside 1..{a} (the cached augmented views)")
    return pd.DataFrame([{"views": v, **_tip(d, *build_cache(d.views[:v], d.labels, d.num_classes), grid)}
                         for v in views])


def prompt_ensemble(d: AblationData, classifiers: Mapping[str, Tensor], tip_f: "TipF | None" = None,
                    grid: "Grid | None" = None, device: "str | torch.device" = "cpu") -> pd.DataFrame:
    """Zero-shot, Tip-Adapter (and Tip-Adapter-F if ``tip_f``) with each text classifier.

    Args:
        classifiers: name -> ``[C, D]`` text classifier, e.g. ``{"single": W_1, "ensemble": W_7}``
            (:func:`load_data` with ``templates=...`` builds them); it replaces ``d.class_embeddings``.

    α, β and Tip-F's epoch are chosen on val per classifier.
    Returns columns ``prompt, method, alpha, beta, val_acc, acc`` (+ ``best_epoch, train_s`` for Tip-F).
    """
    rows, variants = [], {name: dataclasses.replace(d, class_embeddings=w) for name, w in classifiers.items()}
    for name, dw in variants.items():
        dw = dw.to(device)
        keys, values = dw.cache()
        rows.append({"prompt": name, "method": "zero_shot", **_zero_shot(dw)})
        rows.append({"prompt": name, "method": "tip_adapter", **_tip(dw, keys, values, grid)})
        if tip_f is not None:
            rows.append({"prompt": name, "method": "tip_adapter_f", **_tip_f(dw, keys, values, grid, tip_f, device)})
    return pd.DataFrame(rows)


def finetune_parts(d: AblationData, parts: Sequence[str] = PAPER_PARTS, tip_f: TipF = TipF(),
                   grid: "Grid | None" = None, device: "str | torch.device" = "cpu") -> pd.DataFrame:
    """What Tip-Adapter-F fine-tunes: ``none`` (Tip-Adapter), ``keys``, ``values`` or ``both``.

    Each part is a separate run of :func:`tipkit.core.finetune.finetune` (``train=part``) from the same cache;
    the epoch and then α, β are chosen on val. Returns columns ``part, alpha, beta, val_acc, acc, best_epoch,
    train_s`` (both 0 for ``none``).
    """
    for p in parts:
        choose("finetune part", p, ("none",) + TRAINABLE)
    d, rows = d.to(device), []
    keys, values = d.cache()
    for p in parts:
        row = {**_tip(d, keys, values, grid), "best_epoch": 0, "train_s": 0.0} if p == "none" else \
            _tip_f(d, keys, values, grid, tip_f, device, train=p)
        rows.append({"part": p, **row})
        log.info("Tip-F trains %s: test %.2f%%", p, row["acc"])
    return pd.DataFrame(rows)


def finetune_epochs(d: AblationData, epochs: Sequence[int] = PAPER_EPOCHS, tip_f: TipF = TipF(),
                    grid: "Grid | None" = None, device: "str | torch.device" = "cpu") -> pd.DataFrame:
    """Tip-Adapter-F for several training lengths, each its own run with its own cosine schedule.

    Within a run the epoch is kept on val, then α, β are searched on val.
    Returns columns ``epochs, best_epoch, alpha, beta, val_acc, acc, train_s``.
    """
    if any(int(e) != e or e < 1 for e in epochs):
        raise TipkitError(f"epochs must be positive integers, got {list(epochs)}")
    d = d.to(device)
    keys, values = d.cache()
    rows = [{"epochs": e, **_tip_f(d, keys, values, grid, dataclasses.replace(tip_f, epochs=int(e)), device)}
            for e in epochs]
    return pd.DataFrame(rows)
