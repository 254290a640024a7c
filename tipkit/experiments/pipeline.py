"""One run: the methods of ``cfg.methods`` (by default zero-shot, Tip-Adapter, Tip-Adapter-F) fitted on one
shared feature cache.

:func:`fit` makes every choice (few-shot draw, α/β, epochs, ...) on the validation split without touching
the test split; :func:`evaluate` is the only place test images are read. Two protocols: ``clean`` (default;
CoOp's min(K, 4)-per-class validation) and ``paper`` (the official Tip-Adapter code's: full validation split,
and Tip-Adapter-F's epoch chosen on test).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tipkit import data as data_mod
from tipkit.config import RunConfig
from tipkit.core.cache import OneHot, build_cache, l2_normalize
from tipkit.core.finetune import finetune
from tipkit.core.fusion import tip_logits
from tipkit.core.grid import row_chunks
from tipkit.core.metrics import accuracy
from tipkit.data.preflight import preflight
from tipkit.core.search import MEMORY_BUDGET, grid_search, paper_grid
from tipkit.errors import TipkitError, choose
from tipkit.experiments.shift import evaluate_extra, extra_datasets
from tipkit.methods import FewShotData, Method, get_method, list_methods
from tipkit.methods.hparams import paper_settings
from tipkit.models.backbone import (Backbone, check_device, check_weights, class_embeddings, list_backbones,
                                    load_backbone, logit_scale, raw_class_embeddings, text_classifier)
from tipkit.models.features import image_features, view_features

log = logging.getLogger(__name__)


@dataclass
class Fitted:
    """Everything chosen on the few-shot and val data (``[C, D]``, ``[A, K, D]`` tensors), per method."""

    config: RunConfig
    backbone: Backbone
    dataset: data_mod.Dataset
    data: FewShotData
    few_shot: np.ndarray
    val_indices: np.ndarray
    methods: dict[str, Method]
    val: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    predictors: dict[str, Any] = field(default_factory=dict)  # method -> features [N, D] -> logits [N, C]


SINGLE_PROMPT = "a photo of a {}."  # the single-prompt classifier beside a dataset's template ensemble


def check_methods(cfg: RunConfig) -> None:
    """Every name in ``cfg.methods`` is a registered method (the config itself does not know the registry)."""
    known = list_methods()
    for m in cfg.methods:
        choose("method", m, known)


def validate(cfg: RunConfig) -> data_mod.Dataset:
    """Check the config against the dataset before any model work; return the dataset."""
    check_methods(cfg)
    check_device(cfg.device)  # no CUDA, a backbone without its weights: one line before any work
    if cfg.backbone in list_backbones():
        check_weights(cfg.backbone, cfg.pretrained)
    ds = preflight(cfg)  # folder:PATH: every problem of the tree, counts and files in one error, in seconds
    data_mod.few_shot_for(cfg, ds.split("train"), names=ds.classnames)  # raises on bad shots
    if "val" in ds.splits:
        data_mod.val_for(cfg, ds.split("val"), names=ds.classnames)  # raises when val is too small for the protocol
    extra_datasets(cfg, ds)  # raises on an unknown or incompatible extra test set
    if cfg.prompts is not None:
        data_mod.load_prompt_file(cfg.prompts, ds.classnames)  # raises on a bad or incomplete prompt file
    for key in ("augment_views", "epochs", "batch_size"):
        if getattr(cfg, key) < 1:
            raise TipkitError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    return ds


def prepare(cfgs: list[RunConfig]) -> None:
    """Extract once the features a batch of runs will need: whole val/test splits and the union of
    their few-shot images under every augmented view (grouped by model and dataset)."""
    groups: dict[tuple, list[RunConfig]] = {}
    for c in cfgs:
        key = (c.dataset, c.data_root, c.skip_corrupt, c.backbone, c.pretrained, c.device, c.precision, c.aug_seed)
        groups.setdefault(key, []).append(c)
    for (_, _, _, backbone, pretrained, device, precision, aug_seed), group in groups.items():
        if pretrained in (None, "", "none"):
            continue  # random-init smoke runs: each seed is its own model
        ds = data_mod.dataset_for(group[0])
        if any(s not in ds.splits for s in ("train", "val", "test")):
            continue  # evaluation-only datasets are extracted by the runs that use them
        bb = load_backbone(backbone, pretrained, device=device, precision=precision)
        kw = dict(batch_size=group[0].batch_size, workers=group[0].workers)
        for split in ("val", "test"):
            image_features(bb, ds.name, ds.split(split), **kw)
        train = ds.split("train")
        shots = np.unique(np.concatenate([data_mod.few_shot_for(c, train) for c in group]))
        view_features(bb, ds.name, train, shots, max(c.augment_views for c in group), aug_seed=aug_seed, **kw)
        for x in {x.name: x for c in group for x in extra_datasets(c, ds)}.values():
            image_features(bb, x.name, x.split("test"), **kw)


def method_overrides(cfg: RunConfig, name: str) -> dict[str, Any]:
    """A method's settings from the run config (Tip's grid and Tip-F's training follow the dataset's; under
    ``paper``, APE's and APE-T's follow their official per-dataset configs and LP++ chooses on its own split)."""
    grid = {"search_scale": list(cfg.search_scale), "search_step": list(cfg.search_step)}
    if cfg.protocol == "paper" and name not in ("tip_adapter", "tip_adapter_f"):
        return {**paper_settings(cfg.dataset, name), **({"val_shots": "shots"} if name == "lp_plus_plus" else {})}
    if name == "tip_adapter":
        return grid
    if name == "tip_adapter_f":
        return {**grid, "init_alpha": cfg.init_alpha, "init_beta": cfg.init_beta, "epochs": cfg.epochs,
                "lr": cfg.lr, "batch_size": cfg.batch_size}
    return {}


def fit(cfg: RunConfig, ds: "data_mod.Dataset | None" = None) -> Fitted:
    """Extract features, build the few-shot data and fit every method of ``cfg.methods`` on it.

    Every choice is made on the validation split: all of it under the ``paper`` protocol (Tip-Adapter's
    official code), ``min(K, 4)`` images per class under ``clean`` (CoOp's). The test split is not read.
    """
    ds = ds or validate(cfg)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    bb = load_backbone(cfg.backbone, cfg.pretrained, device=cfg.device, precision=cfg.precision, init_seed=cfg.seed)
    W = class_embeddings(bb, ds.classnames, ds.templates) if cfg.prompts is None else \
        text_classifier(bb, data_mod.load_prompt_file(cfg.prompts, ds.classnames))  # CuPL-style per-class prompts
    single = W if cfg.prompts is None and (ds.templates == [SINGLE_PROMPT] or len(ds.templates) == 1) else \
        class_embeddings(bb, ds.classnames, [SINGLE_PROMPT])
    train, val = ds.split("train"), ds.split("val")
    few = data_mod.few_shot_for(cfg, train)
    val_idx = data_mod.val_for(cfg, val)
    kw = dict(batch_size=cfg.batch_size, workers=cfg.workers)
    views = view_features(bb, ds.name, train, few, cfg.augment_views, aug_seed=cfg.aug_seed, **kw)  # [A, K, D]
    fv = l2_normalize(image_features(bb, ds.name, val, val_idx, **kw))
    data = FewShotData(views=views, labels=torch.from_numpy(train.labels[few]), val=fv,
                       val_labels=torch.from_numpy(val.labels[val_idx]), class_embeddings=W,
                       single_prompt_embeddings=single, seed=cfg.seed, device=cfg.device, backbone=bb,
                       classnames=ds.classnames, raw_class_embeddings=raw_class_embeddings(bb, ds.classnames, ds.templates)
                       if "clap" in cfg.methods else None,  # CLAP's base: the raw text features
                       logit_scale=logit_scale(bb))
    t["features_s"] = time.perf_counter() - t0
    methods, val_acc = {}, {}
    for name in cfg.methods:
        if cfg.protocol == "paper" and name == "tip_adapter_f":
            continue  # the official Tip-F selects its epoch on test: done in evaluate(), labelled as such
        t0 = time.perf_counter()
        methods[name] = get_method(name, **method_overrides(cfg, name)).fit(data)
        t[f"{name}_fit_s"] = time.perf_counter() - t0
        val_acc[name] = accuracy(methods[name].predict(data.val), data.val_labels)
    return Fitted(cfg, bb, ds, data, few, val_idx, methods, val_acc, t)


def paper_tip_f(f: Fitted, ft: torch.Tensor, yt: torch.Tensor) -> tuple[float, dict[str, Any]]:
    """Tip-Adapter-F as the official code scores it: the epoch kept on the **test** set, then α/β searched on
    val, and the larger of the two test accuracies reported (test-set selection; ``paper`` protocol only)."""
    cfg, d = f.config, f.data
    keys, values = build_cache(d.views, d.labels, d.num_classes)
    r = finetune(d.views, d.labels, ft, yt, d.class_embeddings, keys, values, cfg.init_alpha, cfg.init_beta,
                 epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed, device=cfg.device)
    betas, alphas = paper_grid(tuple(cfg.search_scale), tuple(cfg.search_step))
    onehot = OneHot(d.labels, d.num_classes)
    s = grid_search(d.val, d.val_labels, d.class_embeddings, r.keys, onehot, betas, alphas)
    chunks = row_chunks(len(ft), 4 * (2 * len(r.keys) + 4 * d.num_classes), MEMORY_BUDGET)  # N may be 50,000
    logits = torch.cat([tip_logits(ft[i:i + chunks.step], d.class_embeddings, r.keys, onehot, s.best_alpha,
                                   s.best_beta) for i in chunks])
    after = accuracy(logits, yt)
    return max(r.best_val_acc, after), {"alpha": s.best_alpha, "beta": s.best_beta, "best_epoch": r.best_epoch,
                                        "selection": "epoch on test; max of two test accuracies",
                                        "history": r.history,
                                        "predict": lambda x: tip_logits(x, d.class_embeddings, r.keys, onehot,
                                                                        s.best_alpha, s.best_beta)}


def evaluate(f: Fitted) -> tuple[dict[str, float], dict[str, Any]]:
    """Top-1 test accuracy (%) per method, and extra per-method facts; the only reader of test images
    (under the ``paper`` protocol Tip-Adapter-F also selects on them, as the official code does). Leaves each
    method's final predictor in ``f.predictors`` (for the extra test sets: :mod:`tipkit.experiments.shift`)."""
    test = f.dataset.split("test")
    t0 = time.perf_counter()
    ft = l2_normalize(image_features(f.backbone, f.dataset.name, test, batch_size=f.config.batch_size,
                                     workers=f.config.workers))
    yt = torch.from_numpy(test.labels)
    f.timings["test_features_s"] = time.perf_counter() - t0
    acc, extra = {}, {}
    f.predictors = {n: m.predict for n, m in f.methods.items()}
    for name in f.config.methods:
        if name in f.methods:
            acc[name] = accuracy(f.methods[name].predict(ft), yt)
        else:
            acc[name], extra[name] = paper_tip_f(f, ft, yt)
            f.predictors[name] = extra[name].pop("predict")
    return acc, extra


def run(cfg: RunConfig, save_adapter: "str | Path | None" = None, adapter_method: "str | None" = None) -> dict[str, Any]:
    """Fit, evaluate and return the run's record (not yet written: see :func:`tipkit.experiments.report.write_record`).

    ``save_adapter``: also write the fitted ``adapter_method`` (default: Tip-Adapter-F, else Tip-Adapter,
    else zero-shot) as one adapter file (:class:`tipkit.apply.adapter.Adapter`); the record names it.
    """
    from tipkit.apply import adapter as adapter_mod
    from tipkit.experiments.report import make_record

    if save_adapter is not None:  # bad targets fail before any model work
        adapter_method = adapter_mod.choose_method(cfg, adapter_method)
        save_adapter = adapter_mod.check_target(save_adapter)
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    fitted = fit(cfg)
    test, extra = evaluate(fitted)
    scores = evaluate_extra(fitted, fitted.predictors)  # {"test:<name>": {method: top-1}}, unchanged methods
    fitted.timings["total_s"] = time.perf_counter() - start
    hyper = {n: m.hyper for n, m in fitted.methods.items()}
    history = {n: m.history for n, m in fitted.methods.items() if m.history}
    for n, e in extra.items():
        history[n] = e.pop("history")
        hyper[n] = e
    ds = fitted.dataset
    record = make_record(
        config=asdict(cfg), metrics={"test": test, "val": fitted.val, **scores}, hyper=hyper, history=history,
        manifest=data_mod.manifest(ds.split("train"), fitted.few_shot),
        val_manifest=[int(i) for i in fitted.val_indices],
        timings={k: round(v, 3) for k, v in fitted.timings.items()},
        model={"name": fitted.backbone.name, "pretrained": fitted.backbone.pretrained,
               "weights": fitted.backbone.weights_id},
        data={"skipped_images": len(ds.skipped), "skipped": ds.skipped, **({"source": ds.info} if ds.info else {})})
    if save_adapter is not None:
        a = adapter_mod.Adapter.from_method(
            fitted.methods[adapter_method], fitted.backbone, ds.classnames,
            [SINGLE_PROMPT] if adapter_method == "zero_shot_single" else ds.templates,
            class_folders=ds.info.get("class_folders"), batch_size=cfg.batch_size,
            run={"record_id": record["id"], "dataset": cfg.dataset, "shots": cfg.shots, "seed": cfg.seed,
                 "protocol": cfg.protocol, "test_top1": test[adapter_method]})
        record["adapter"] = {"path": str(a.save(save_adapter)), "method": adapter_method}
    return record
