"""Tip-Adapter and Tip-Adapter-F (Zhang et al., "Tip-Adapter: Training-free Adaption of CLIP for
Few-shot Classification", ECCV 2022, arXiv 2207.09519; code github.com/gaopengcuhk/Tip-Adapter).

    logits = 100 · f Wᵀ + α · exp(−β (1 − f Kᵀ)) V

with cache keys ``K [K, D]`` (view-mean, L2-normalised) and one-hot values ``V [K, C]``.
Tip-Adapter searches (α, β) on the validation split; Tip-Adapter-F first fine-tunes the keys
(AdamW, cosine, α/β fixed at their initial values, epoch chosen on val), then searches again.
These classes only wrap :func:`tipkit.core.search.grid_search` and :func:`tipkit.core.finetune.finetune`;
the grid settings default to :class:`tipkit.config.RunConfig`'s.
"""

from __future__ import annotations

import torch

from tipkit.core.cache import OneHot
from tipkit.core.finetune import finetune
from tipkit.core.fusion import tip_logits
from tipkit.core.search import grid_search, paper_grid
from tipkit.methods.base import FewShotData, Method, register


@register
class TipAdapter(Method):
    name = "tip_adapter"

    def _search(self, data: FewShotData, keys: torch.Tensor) -> None:
        betas, alphas = paper_grid(tuple(self.params["search_scale"]), tuple(self.params["search_step"]))
        dev = self.device
        self.W = data.class_embeddings.float().to(dev)
        self.keys, self.values = keys.float().to(dev), OneHot(data.labels, data.num_classes).to(dev)
        s = grid_search(data.val.float().to(dev), data.val_labels.to(dev), self.W, self.keys, self.values, betas, alphas,
                        memory_budget=self.memory_budget)
        self.alpha, self.beta = s.best_alpha, s.best_beta
        self.hyper.update({"alpha": s.best_alpha, "beta": s.best_beta, "val_acc": s.best_acc})

    def _fit(self, data: FewShotData) -> None:
        self._search(data, data.keys)

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        return tip_logits(features, self.W, self.keys, self.values, self.alpha, self.beta)

    def _query_bytes(self) -> int:
        return 4 * (2 * self.keys.shape[0] + 4 * self._classes)  # affinity and cache weights, logits


@register
class TipAdapterF(TipAdapter):
    name = "tip_adapter_f"

    def _fit(self, data: FewShotData) -> None:
        p = self.params
        r = finetune(data.views, data.labels, data.val.float(), data.val_labels, data.class_embeddings.float(),
                     data.keys, data.values, p["init_alpha"], p["init_beta"], epochs=int(p["epochs"]), lr=p["lr"],
                     batch_size=int(p["batch_size"]), seed=data.seed, device=self.device)
        self.history = r.history
        self.hyper["best_epoch"] = r.best_epoch
        self._search(data, r.keys)
