"""One run of the paper: zero-shot, Tip-Adapter (α/β searched on val) and Tip-Adapter-F.

:func:`fit` makes every choice (few-shot draw, α/β, Tip-F epoch) without
touching the test split; :func:`evaluate` is the only place test images are read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from . import data as data_mod
from .cache import build_cache, l2_normalize
from .config import RunConfig
from .errors import TipkitError
from .features import Backbone, class_embeddings, image_features, load_backbone, view_features
from .finetune import finetune
from .fusion import clip_logits, tip_logits
from .metrics import accuracy
from .search import grid_search, paper_grid

log = logging.getLogger(__name__)


@dataclass
class Fitted:
    """Everything chosen on the few-shot and val data; ``[C, D]``, ``[K, D]``, ``[K, C]`` tensors."""

    config: RunConfig
    backbone: Backbone
    dataset: data_mod.Dataset
    class_embeddings: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    few_shot: np.ndarray
    tip: dict[str, float]
    tip_f: dict[str, Any] | None
    val: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)


def validate(cfg: RunConfig) -> data_mod.Dataset:
    """Check the config against the dataset before any model work; return the dataset."""
    ds = data_mod.get_dataset(cfg.dataset, root=cfg.data_root)
    data_mod.sample_few_shot(ds.split("train").labels, cfg.shots, cfg.seed)  # raises on bad shots
    for key in ("augment_views", "epochs", "batch_size"):
        if getattr(cfg, key) < 1:
            raise TipkitError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    return ds


def prepare(cfgs: list[RunConfig]) -> None:
    """Extract once the features a batch of runs will need: whole val/test splits and the union of
    their few-shot images under every augmented view (grouped by model and dataset)."""
    groups: dict[tuple, list[RunConfig]] = {}
    for c in cfgs:
        key = (c.dataset, c.data_root, c.backbone, c.pretrained, c.device, c.precision, c.aug_seed)
        groups.setdefault(key, []).append(c)
    for (dataset, root, backbone, pretrained, device, precision, aug_seed), group in groups.items():
        if pretrained in (None, "", "none"):
            continue  # random-init smoke runs: each seed is its own model
        ds = data_mod.get_dataset(dataset, root=root)
        if any(s not in ds.splits for s in ("train", "val", "test")):
            continue  # evaluation-only datasets are extracted by the runs that use them
        bb = load_backbone(backbone, pretrained, device=device, precision=precision)
        kw = dict(batch_size=group[0].batch_size, workers=group[0].workers)
        for split in ("val", "test"):
            image_features(bb, ds.name, ds.split(split), **kw)
        train = ds.split("train")
        shots = np.unique(np.concatenate([data_mod.sample_few_shot(train.labels, c.shots, c.seed) for c in group]))
        view_features(bb, ds.name, train, shots, max(c.augment_views for c in group), aug_seed=aug_seed, **kw)


def fit(cfg: RunConfig, ds: "data_mod.Dataset | None" = None) -> Fitted:
    """Build the cache, search α/β on val, fine-tune Tip-F keys choosing the epoch on val."""
    ds = ds or validate(cfg)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    bb = load_backbone(cfg.backbone, cfg.pretrained, device=cfg.device, precision=cfg.precision, init_seed=cfg.seed)
    W = class_embeddings(bb, ds.classnames, ds.templates)
    train, val = ds.split("train"), ds.split("val")
    few = data_mod.sample_few_shot(train.labels, cfg.shots, cfg.seed)
    kw = dict(batch_size=cfg.batch_size, workers=cfg.workers)
    views = view_features(bb, ds.name, train, few, cfg.augment_views, aug_seed=cfg.aug_seed, **kw)  # [A, K, D]
    labels = torch.from_numpy(train.labels[few])
    keys, values = build_cache(views, labels, ds.num_classes)
    fv = l2_normalize(image_features(bb, ds.name, val, **kw))
    yv = torch.from_numpy(val.labels)
    t["features_and_cache_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    betas, alphas = paper_grid(tuple(cfg.search_scale), tuple(cfg.search_step))
    s = grid_search(fv, yv, W, keys, values, betas, alphas)
    t["tip_search_s"] = time.perf_counter() - t0
    val_acc = {"zero_shot": accuracy(clip_logits(fv, W), yv), "tip_adapter": s.best_acc}
    tip = {"alpha": s.best_alpha, "beta": s.best_beta}

    tip_f = None
    if cfg.finetune:
        t0 = time.perf_counter()
        r = finetune(views, labels, fv, yv, W, keys, values, cfg.init_alpha, cfg.init_beta, epochs=cfg.epochs,
                     lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed, device=cfg.device)
        sf = grid_search(fv, yv, W, r.keys, values, betas, alphas)
        t["tip_f_train_s"] = time.perf_counter() - t0
        tip_f = {"alpha": sf.best_alpha, "beta": sf.best_beta, "best_epoch": r.best_epoch, "keys": r.keys,
                 "history": r.history}
        val_acc["tip_adapter_f"] = sf.best_acc
    return Fitted(cfg, bb, ds, W, keys, values, few, tip, tip_f, val_acc, t)


def evaluate(f: Fitted) -> dict[str, float]:
    """Top-1 test accuracy (%) of every method; the only function that reads test images."""
    test = f.dataset.split("test")
    t0 = time.perf_counter()
    ft = l2_normalize(image_features(f.backbone, f.dataset.name, test, batch_size=f.config.batch_size,
                                     workers=f.config.workers))
    yt = torch.from_numpy(test.labels)
    f.timings["test_features_s"] = time.perf_counter() - t0
    W, K, V = f.class_embeddings, f.keys, f.values
    acc = {"zero_shot": accuracy(clip_logits(ft, W), yt),
           "tip_adapter": accuracy(tip_logits(ft, W, K, V, f.tip["alpha"], f.tip["beta"]), yt)}
    if f.tip_f is not None:
        acc["tip_adapter_f"] = accuracy(tip_logits(ft, W, f.tip_f["keys"], V, f.tip_f["alpha"], f.tip_f["beta"]), yt)
    return acc


def run(cfg: RunConfig) -> dict[str, Any]:
    """Fit, evaluate and return the run's record (not yet written: see :func:`tipkit.report.write_record`)."""
    from .report import make_record

    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    fitted = fit(cfg)
    test = evaluate(fitted)
    fitted.timings["total_s"] = time.perf_counter() - start
    hyper = {"tip_adapter": fitted.tip}
    if fitted.tip_f is not None:
        hyper["tip_adapter_f"] = {k: v for k, v in fitted.tip_f.items() if k in ("alpha", "beta", "best_epoch")}
    return make_record(
        config=asdict(cfg), metrics={"test": test, "val": fitted.val}, hyper=hyper,
        history=fitted.tip_f["history"] if fitted.tip_f else [],
        manifest=data_mod.manifest(fitted.dataset.split("train"), fitted.few_shot),
        timings={k: round(v, 3) for k, v in fitted.timings.items()},
        model={"name": fitted.backbone.name, "pretrained": fitted.backbone.pretrained,
               "weights": fitted.backbone.weights_id})
