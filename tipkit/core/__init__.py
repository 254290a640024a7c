"""Stages 2-5 of the paper as math on tensors: the cache model, logit fusion, the α/β search,
Tip-Adapter-F's fine-tuning and the accuracy metric.

Modules: :mod:`.cache` (keys and one-hot values), :mod:`.fusion` (``100·f·Wᵀ + α·exp(−β(1 − f·Kᵀ))·V``),
:mod:`.search` (the α/β grid), :mod:`.finetune` (Tip-Adapter-F), :mod:`.metrics` (top-k accuracy).

What it may import: torch, tqdm and :mod:`tipkit.errors` — nothing else of tipkit (declared in
``pyproject.toml``, checked by ``lint-imports``). Everything here takes tensors and an explicit ``device``.
"""

from __future__ import annotations

from tipkit.core.cache import build_cache, l2_normalize, one_hot
from tipkit.core.finetune import FinetuneResult, finetune, fused_logits
from tipkit.core.fusion import affinity_to_cache, cache_logits, clip_logits, tip_logits
from tipkit.core.metrics import accuracy, per_class_accuracy
from tipkit.core.search import SearchResult, grid_search, paper_grid

__all__ = ["FinetuneResult", "SearchResult", "accuracy", "affinity_to_cache", "build_cache", "cache_logits",
           "clip_logits", "finetune", "fused_logits", "grid_search", "l2_normalize", "one_hot", "paper_grid",
           "per_class_accuracy", "tip_logits"]
