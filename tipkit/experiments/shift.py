"""Distribution shift (the paper's Table 5): a run's fitted methods evaluated, unchanged, on extra test sets.

Everything — the cache, α and β, Tip-Adapter-F's keys, every method's choices — is fitted on the run's own
dataset (few-shot images and validation split); each extra test set (``cfg.extra_test``: ImageNet-V2 and
ImageNet-Sketch for ImageNet, ``fashion-mnist-v2`` and ``fashion-mnist-sketch`` for the stand-in's
Fashion-MNIST) is then only read, like the test split. The accuracies go into the record as
``metrics["test:<name>"]`` (``{method: top-1 %}``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable

import torch

from tipkit import data as data_mod
from tipkit.config import RunConfig
from tipkit.core.cache import l2_normalize
from tipkit.core.metrics import accuracy
from tipkit.errors import TipkitError
from tipkit.models.features import image_features

if TYPE_CHECKING:  # pragma: no cover
    from tipkit.experiments.pipeline import Fitted

log = logging.getLogger(__name__)
PREFIX = "test:"  # metrics key of an extra test set: "test:<dataset name>"


def extra_datasets(cfg: RunConfig, ds: data_mod.Dataset) -> list[data_mod.Dataset]:
    """The extra test sets ``cfg.extra_test`` names, each checked: a known dataset with a ``test`` split and
    the same classes, in the same order, as the run's dataset ``ds`` (else one clear error)."""
    out = []
    for name in cfg.extra_test:
        if name == cfg.dataset:
            raise TipkitError(f"extra test set {name!r} is the run's own dataset; name a shifted one")
        x = data_mod.get_dataset(name, root=cfg.data_root, download=getattr(cfg, "download", False))
        if "test" not in x.splits:
            raise TipkitError(f"extra test set {name!r} has no 'test' split (has: {', '.join(x.splits)})")
        if x.classnames != ds.classnames:
            raise TipkitError(f"extra test set {name!r} has other classes than {cfg.dataset!r} "
                              f"({x.num_classes} vs {ds.num_classes}, or another order): the fitted methods "
                              f"cannot score it unchanged")
        out.append(x)
    if len(set(cfg.extra_test)) != len(cfg.extra_test):
        raise TipkitError(f"extra test sets repeat a name: {', '.join(cfg.extra_test)}")
    return out


def evaluate_extra(f: "Fitted", predictors: dict[str, Callable[[torch.Tensor], torch.Tensor]]) -> dict[str, dict[str, float]]:
    """Top-1 (%) of every method on every extra test set of ``f.config``: ``{"test:<name>": {method: top-1}}``.

    ``predictors[method]`` maps L2-normalised features ``[N, D]`` to logits ``[N, C]`` (the fitted methods,
    and under the ``paper`` protocol Tip-Adapter-F's keys and α/β as chosen for the main test set).
    """
    out: dict[str, dict[str, float]] = {}
    for x in extra_datasets(f.config, f.dataset):
        t0 = time.perf_counter()
        split = x.split("test")
        ft = l2_normalize(image_features(f.backbone, x.name, split, batch_size=f.config.batch_size,
                                         workers=f.config.workers))
        y = torch.from_numpy(split.labels)
        out[PREFIX + x.name] = {m: accuracy(predictors[m](ft), y) for m in f.config.methods}
        f.timings[f"{PREFIX}{x.name}_s"] = time.perf_counter() - t0
        log.info("%s: %s", x.name, {m: round(a, 2) for m, a in out[PREFIX + x.name].items()})
    return out
