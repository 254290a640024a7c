"""Zero-shot CLIP (Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021, arXiv 2103.00020).

    logits = 100 · f Wᵀ

with ``f [N, D]`` L2-normalised image features and ``W [C, D]`` the text classifier: the
L2-normalised embedding of one prompt per class (``zero_shot_single``), or per class the mean of
the L2-normalised embeddings of a template ensemble, renormalised (``zero_shot``, as Tip-Adapter).
Nothing is fitted; the few-shot images are not used.
"""

from __future__ import annotations

import torch

from tipkit.errors import TipkitError
from tipkit.methods.base import FewShotData, Method, register, zero_shot_logits


@register
class ZeroShot(Method):
    """Zero-shot CLIP with the template-ensemble classifier ``data.class_embeddings``."""

    name = "zero_shot"

    def _classifier(self, data: FewShotData) -> torch.Tensor:
        return data.class_embeddings

    def _fit(self, data: FewShotData) -> None:
        self.W = self._classifier(data).float().to(self.device)  # [C, D]
        self.hyper = {}

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        return zero_shot_logits(features, self.W)


@register
class ZeroShotSingle(ZeroShot):
    """Zero-shot CLIP with the single-prompt classifier ``data.single_prompt_embeddings``."""

    name = "zero_shot_single"

    def _classifier(self, data: FewShotData) -> torch.Tensor:
        if data.single_prompt_embeddings is None:
            raise TipkitError("zero_shot_single needs FewShotData.single_prompt_embeddings (the single-prompt classifier)")
        return data.single_prompt_embeddings
