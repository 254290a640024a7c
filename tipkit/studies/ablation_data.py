"""What an ablation runs on: the cached features of one run (:class:`AblationData`), Tip-Adapter-F's
training settings (:class:`TipF`), and :func:`load_data`, which extracts or loads them for a RunConfig."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from tipkit.core.cache import build_cache, l2_normalize
from tipkit.errors import TipkitError

Tensor = torch.Tensor


@dataclass(frozen=True)
class AblationData:
    """The features one ablation needs (``A`` views, ``K`` few-shot images, ``C`` classes, ``D`` dims)."""

    views: Tensor  # [A, K, D] raw few-shot features under A augmented views (features.view_features)
    labels: Tensor  # [K] class of each few-shot image
    val_features: Tensor  # [Nv, D] L2-normalised
    val_labels: Tensor  # [Nv]
    test_features: Tensor  # [Nt, D] L2-normalised, read only for the reported accuracy
    test_labels: Tensor  # [Nt]
    class_embeddings: Tensor  # [C, D] text classifier W

    def __post_init__(self) -> None:
        feats = {"views": self.views, "val": self.val_features, "test": self.test_features, "W": self.class_embeddings}
        if [f.dim() for f in feats.values()] != [3, 2, 2, 2]:
            raise TipkitError(f"need views [A, K, D] and 2-D val/test features and W, got "
                              f"{ {k: tuple(f.shape) for k, f in feats.items()} }")
        if len({f.shape[-1] for f in feats.values()}) != 1:
            raise TipkitError(f"feature dimensions disagree: { {k: f.shape[-1] for k, f in feats.items()} }")
        for name, n, y in (("few-shot", self.views.shape[1], self.labels), ("val", len(self.val_features),
                           self.val_labels), ("test", len(self.test_features), self.test_labels)):
            if n != len(y):
                raise TipkitError(f"{n} {name} features but {len(y)} labels")

    @property
    def num_classes(self) -> int:
        return int(self.class_embeddings.shape[0])

    def to(self, device: "str | torch.device") -> "AblationData":
        """A copy with every tensor on ``device``."""
        return AblationData(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})

    def cache(self) -> tuple[Tensor, Tensor]:
        """``(keys [K, D], values [K, C])`` from all views (:func:`tipkit.core.cache.build_cache`)."""
        return build_cache(self.views, self.labels, self.num_classes)


@dataclass(frozen=True)
class TipF:
    """Tip-Adapter-F training settings (α, β fixed during training, as the paper)."""

    alpha: float = 1.0
    beta: float = 1.0
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 256
    seed: int = 1

    @classmethod
    def from_config(cls, cfg: Any) -> "TipF":
        """From a :class:`tipkit.config.RunConfig` (init_alpha, init_beta, epochs, lr, batch_size, seed)."""
        return cls(cfg.init_alpha, cfg.init_beta, cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed)


def load_data(cfg: Any, shots: "int | None" = None, templates: "Sequence[str] | None" = None) -> AblationData:
    """Extract (or load from the feature cache) everything an ablation needs for a RunConfig.

    ``shots`` overrides ``cfg.shots`` (e.g. 128 for :func:`more_shots`); ``templates`` overrides the
    dataset's prompt templates for the text classifier (e.g. :data:`ENSEMBLE_TEMPLATES`). The few-shot
    draw, views and seeds are those of :func:`tipkit.experiments.pipeline.fit`.
    """
    from tipkit import data as data_mod
    from tipkit.models.backbone import class_embeddings, load_backbone
    from tipkit.models.features import image_features, view_features

    ds = data_mod.dataset_for(cfg)
    bb = load_backbone(cfg.backbone, cfg.pretrained, device=cfg.device, precision=cfg.precision, init_seed=cfg.seed)
    train, val, test = ds.split("train"), ds.split("val"), ds.split("test")
    few = data_mod.few_shot_for(cfg, train, shots)
    kw = dict(batch_size=cfg.batch_size, workers=cfg.workers)
    return AblationData(
        views=view_features(bb, ds.name, train, few, cfg.augment_views, aug_seed=cfg.aug_seed, **kw),
        labels=torch.from_numpy(train.labels[few]),
        val_features=l2_normalize(image_features(bb, ds.name, val, **kw)), val_labels=torch.from_numpy(val.labels),
        test_features=l2_normalize(image_features(bb, ds.name, test, **kw)), test_labels=torch.from_numpy(test.labels),
        class_embeddings=class_embeddings(bb, ds.classnames, list(templates or ds.templates)))
