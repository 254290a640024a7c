"""Tip-X (Udandarao et al., "SuS-X: Training-Free Name-Only Transfer of Vision-Language Models",
ICCV 2023, arXiv 2211.16198; code github.com/vishaal27/SuS-X ``tipx.py``).

Tip-Adapter plus an image-text-image term. With ``p(x) = softmax(x Wᵀ / T)`` (``T = 0.5``, cosine
logits, no ×100) the "signature" of an image over the C classes, the KL divergence between the
query's signature and each cache image's is ``KL_ij = Σ_c p_c(f_i) log(p_c(f_i) / p_c(k_j))``. Then

    logits = 100 · f Wᵀ + α · exp(−β (1 − f Kᵀ)) V + γ · (−ψ(KL)) V

where ψ rescales KL linearly into the [min, max] range of the affinities ``f Kᵀ`` (``scale_`` in
the official code). (α, β, γ) are searched on the validation split over the official grid: β from 1
to 50 (200 steps), α from 0.1 to 50 (20), γ from 0.1 to 30 (50); ties keep the first maximum in the
official α-β-γ loop order. Per β the (α, γ) grid is scored as one line along γ per (query, α), over
``zs + α·cache`` (:func:`tipkit.core.grid.line_argmax`): the same predictions as scoring every point.

Deviation: the official ψ uses the min/max of whichever KL matrix it is given (so a test image's
logits depend on the rest of its batch). Here the KL and affinity ranges are measured once on the
validation split in ``fit`` and reused by ``predict``, which makes predictions per-image.
"""

from __future__ import annotations

import logging

import torch
from tqdm.auto import tqdm

from tipkit.core.cache import OneHot
from tipkit.core.fusion import apply_values, cache_weights
from tipkit.core.grid import exp_schedule, line_argmax, row_chunks
from tipkit.methods.base import (
    FewShotData,
    Method,
    grid_or,
    register,
    require_positive,
    zero_shot_logits,
)

log = logging.getLogger(__name__)


def signatures(features: torch.Tensor, class_embeddings: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log-probabilities ``log softmax(f Wᵀ / T)``: ``[N, D] -> [N, C]``."""
    return torch.log_softmax(features @ class_embeddings.T / temperature, dim=-1)


def kl_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``KL(p_i ‖ q_j)`` for every pair: ``[N, C], [K, C] -> [N, K]`` (inputs are log-probabilities)."""
    p = log_p.exp()
    return (p * log_p).sum(-1, keepdim=True) - p @ log_q.T


@register
class TipX(Method):
    name = "tip_x"

    def _kl_logits(self, features: torch.Tensor) -> torch.Tensor:
        """``−ψ(KL) V``: ``[N, D] -> [N, C]``."""
        kl = kl_divergence(signatures(features, self.W, self.temperature), self.cache_sig)
        lo, hi, a_lo, a_hi = self.ranges
        scaled = (kl - lo) / max(hi - lo, 1e-12) * (a_hi - a_lo) + a_lo
        return -apply_values(scaled, self.values)

    def _ranges(self, fv: torch.Tensor, chunks: range) -> tuple[float, float, float, float]:
        """min/max of the validation KL divergences and affinities (ψ's ranges), one chunk of queries at a time."""
        lo, hi, a_lo, a_hi = float("inf"), float("-inf"), float("inf"), float("-inf")
        for s in chunks:
            f = fv[s:s + chunks.step]
            kl = kl_divergence(signatures(f, self.W, self.temperature), self.cache_sig)
            aff = f @ self.keys.T
            lo, hi = min(lo, float(kl.min())), max(hi, float(kl.max()))
            a_lo, a_hi = min(a_lo, float(aff.min())), max(a_hi, float(aff.max()))
        return lo, hi, a_lo, a_hi

    def _fit(self, data: FewShotData) -> None:
        p = self.params
        require_positive(self.name, temperature=p["temperature"])
        (sb, sa, sg), (nb, na, ng) = p["search_scale"], p["search_step"]
        betas = grid_or(p["betas"], sb, nb, 1.0)
        alphas = grid_or(p["alphas"], sa, na, 0.1)
        gammas = grid_or(p["gammas"], sg, ng, 0.1)
        dev = self.device
        self.temperature = float(p["temperature"])
        self.W = data.class_embeddings.float().to(dev)
        self.keys, self.values = data.keys.to(dev), OneHot(data.labels, data.num_classes).to(dev)
        self.cache_sig = signatures(self.keys, self.W, self.temperature)  # [K, C]
        fv, yv = data.val.float().to(dev), data.val_labels.to(dev)
        c = data.num_classes
        chunks = row_chunks(len(fv), 4 * (4 * len(self.keys) + (3 * len(alphas) + 8) * c), self.memory_budget)
        self.ranges = self._ranges(fv, chunks)
        a = torch.tensor(alphas, device=dev, dtype=torch.float32)
        g = torch.tensor(gammas, device=dev, dtype=torch.float32)
        correct = torch.zeros(len(betas), len(alphas), len(gammas), dtype=torch.long)
        for s in tqdm(chunks, desc="Tip-X search", unit="chunk", leave=False, disable=len(chunks) < 2):
            f, y = fv[s:s + chunks.step], yv[s:s + chunks.step]
            zs, kl_logits = zero_shot_logits(f, self.W), self._kl_logits(f)
            distance = (f @ self.keys.T).neg_().add_(1.0)  # 1 − f Kᵀ
            lines, scratch = torch.empty(len(f), len(a), c, device=dev), torch.empty(len(f), len(a), c, device=dev)
            for i, weights in enumerate(exp_schedule(distance, betas)):  # zs + α·cache + γ·kl on the (α, γ) grid
                torch.mul(apply_values(weights, self.values).unsqueeze(1), a.view(1, -1, 1), out=lines)
                lines.add_(zs.unsqueeze(1))  # [n, nα, C]: zs + α·cache for every α, then a γ-axis line per row
                pred = line_argmax(lines, kl_logits, g, scratch=scratch)  # [n, nα, nγ]
                correct[i] += (pred == y.view(-1, 1, 1)).sum(0).cpu()
            del lines, scratch
        grid = correct.permute(1, 0, 2)  # official order α, β, γ
        ia, ib, ig = torch.unravel_index(torch.argmax(grid.flatten()), grid.shape)  # first maximum
        self.alpha, self.beta, self.gamma = alphas[int(ia)], betas[int(ib)], gammas[int(ig)]
        self.hyper = {"alpha": self.alpha, "beta": self.beta, "gamma": self.gamma,
                      "val_acc": 100.0 * float(grid.max()) / len(yv)}
        log.info("Tip-X: alpha=%.3g beta=%.3g gamma=%.3g, val %.2f%%", self.alpha, self.beta, self.gamma,
                 self.hyper["val_acc"])

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        logits = zero_shot_logits(features, self.W)
        if self.alpha != 0:
            weights = cache_weights(features @ self.keys.T, self.beta, inplace=True)  # exp(−β(1 − f Kᵀ))
            logits = logits + self.alpha * apply_values(weights, self.values)
        if self.gamma != 0:
            logits = logits + self.gamma * self._kl_logits(features)
        return logits

    def _query_bytes(self) -> int:
        return 4 * (3 * len(self.keys) + 6 * self._classes)  # affinity, weights, KL; logits
